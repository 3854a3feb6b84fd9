"""The web demo: its input checks (no model needed) and the page driven in headless Chromium.

The browser test needs Debian's ``chromium`` + ``chromium-driver``
(``tools/install/install_browser.sh``) and is skipped, saying so, when they are absent.
"""
import io
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_apis.seg_config import write_seg_config  # tests/ is on sys.path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = '/usr/bin/chromium', '/usr/bin/chromedriver'
CHROME_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                '--disable-background-networking', '--disable-component-update', '--disable-sync']


def png_bytes(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((np.random.RandomState(0).rand(height, width, 3) * 255).astype(np.uint8)
                    ).save(buf, format='PNG')
    return buf.getvalue()


class FakeInferencer:
    """Answers like ULLaVAInferencer: one [SEG] whose mask is the left half."""

    def __call__(self, prompt, image=None, video=None):
        h, w = image.shape[:2] if image is not None else (8, 8)
        masks = torch.zeros(1, h, w, dtype=torch.bool)
        masks[:, :, :w // 2] = True
        return dict(text='Sure, [SEG].', masks=masks, scores=masks.float(),
                    boxes=torch.tensor([[0.0, 0.0, w / 2, h]]))


@pytest.fixture()
def demo():
    from ullava.apis.web import WebDemo
    return WebDemo(FakeInferencer(), max_pixels=200 * 200)


def test_good_image_gives_answer_and_overlay(demo):
    page = demo.handle(dict(prompt='Segment it.', file=('a.png', png_bytes(40, 30))))
    assert '<p id="answer">Sure, [SEG].</p>' in page
    assert 'id="overlay"' in page and 'data:image/png;base64,' in page
    assert 'id="error"' not in page


@pytest.mark.parametrize('fields, message', [
    (dict(prompt='  ', file=('a.png', png_bytes(8, 8))), 'Please type a prompt: it is empty.'),
    (dict(prompt='hi', file=('notes.txt', b'hello')), 'notes.txt is not a readable image'),
    (dict(prompt='hi', file=('big.png', png_bytes(300, 200))),
     'big.png is 300x200 = 60,000 pixels; the limit is 40,000'),
    (dict(prompt='hi', file=('clip.mp4', b'\x00' * 64)), 'clip.mp4 has no frames'),
    (dict(prompt='hi', file=('a.png', b'')), 'a.png is empty.'),
])
def test_bad_input_gives_a_message(demo, fields, message):
    page = demo.handle(fields)
    assert re.search(r'<p id="error" class="error">[^<]*' + re.escape(message), page), page
    assert 'id="answer"' not in page


def test_multipart_form_parsing():
    from ullava.apis.web import parse_form
    body = (b'--XyZ\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nwhat \xc3\xa9?\r\n'
            b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
            b'Content-Type: image/png\r\n\r\n\x89PNG\r\n\x00\x01\r\n--XyZ--\r\n')
    fields = parse_form('multipart/form-data; boundary=XyZ', body)
    assert fields == dict(prompt='what \u00e9?', file=('a.png', b'\x89PNG\r\n\x00\x01'))


@pytest.fixture()
def server(tmp_path):
    """tools/web_demo.py on a free port; yields its URL. Random weights, biased to answer exactly
    ``[SEG]`` so the answer is known and the overlay shows a mask."""
    cfg = write_seg_config(tmp_path / 'seg_cfg.py')
    proc = subprocess.Popen(
        [sys.executable, 'tools/web_demo.py', str(cfg), 'none', '--port', '0', '--device', 'cpu'],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url, seen, deadline = None, [], time.time() + 300
    while url is None and time.time() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        found = re.search(r'serving on (http://127\.0\.0\.1:\d+/)', line)
        url = found and found.group(1)
    try:
        assert url, 'the server did not start:\n' + ''.join(seen[-30:])
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        proc.stdout.close()


@pytest.fixture()
def browser(tmp_path):
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        pytest.skip(f'{CHROMIUM} / {CHROMEDRIVER} not installed: run '
                    f'tools/install/install_browser.sh')
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # with the driver path below: selenium-manager never runs
    for flag in CHROME_FLAGS + [f'--user-data-dir={tmp_path / "chrome-profile"}']:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


def _submit(driver, url: str, prompt: str, upload: Path | None):
    """Load the page, fill the form, submit; returns after the answer page has loaded."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
    driver.get(url)
    box = driver.find_element(By.ID, 'prompt')
    box.clear()
    box.send_keys(prompt)
    if upload is not None:
        driver.find_element(By.ID, 'file').send_keys(str(upload))
    old = driver.find_element(By.TAG_NAME, 'html')
    driver.find_element(By.ID, 'submit').click()
    WebDriverWait(driver, 120).until(EC.staleness_of(old))  # the result page replaced it
    WebDriverWait(driver, 30).until(
        lambda d: d.find_elements(By.ID, 'answer') or d.find_elements(By.ID, 'error'))


def _text(driver, element_id: str) -> str | None:
    from selenium.webdriver.common.by import By
    found = driver.find_elements(By.ID, element_id)
    return found[0].text if found else None


def test_page_in_headless_chromium(server, browser, tmp_path):
    image = tmp_path / 'shapes.png'
    image.write_bytes(png_bytes(96, 64))
    notes = tmp_path / 'notes.txt'
    notes.write_text('this is not an image')

    _submit(browser, server, 'Segment the red circle.', image)
    assert _text(browser, 'error') is None
    assert _text(browser, 'answer') == '[SEG]'
    size = browser.execute_script(
        'const i = document.getElementById("overlay"); return [i.complete, i.naturalWidth, '
        'i.naturalHeight];')
    assert size == [True, 96, 64]  # the overlay decoded, at the input's size

    _submit(browser, server, '', image)
    assert 'prompt' in _text(browser, 'error') and _text(browser, 'answer') is None

    _submit(browser, server, 'What is this?', notes)
    assert 'notes.txt is not a readable image' in _text(browser, 'error')

    _submit(browser, server, 'Describe the image.', image)  # still serving after bad input
    assert _text(browser, 'answer') == '[SEG]' and _text(browser, 'error') is None
