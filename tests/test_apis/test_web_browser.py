"""tools/web_demo.py in a subprocess: served on a free port and driven in headless Chromium.

Needs Debian's ``chromium`` + ``chromium-driver`` (``tools/install/install_browser.sh``); skipped,
saying so, when they are absent. Random weights biased to answer exactly ``[SEG]``
(tests/test_apis/seg_config.py), so every answer on an image brings an overlay.
"""
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_apis.seg_config import write_seg_config  # tests/ is on sys.path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = '/usr/bin/chromium', '/usr/bin/chromedriver'
CHROME_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                '--disable-background-networking', '--disable-component-update', '--disable-sync',
                '--window-size=1280,1600']
WAIT_S = 120


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    """tools/web_demo.py on a free port; yields its URL."""
    cfg = write_seg_config(tmp_path_factory.mktemp('cfg') / 'seg_cfg.py')
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
        proc.terminate()  # SIGTERM: the tool closes the server and removes its files
        try:
            assert proc.wait(timeout=30) == 0
        finally:
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
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


def _wait(driver, condition, timeout: float = WAIT_S):
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)


def _bot_messages(driver):
    from selenium.webdriver.common.by import By
    return driver.find_elements(By.CSS_SELECTOR, '#chat [data-testid="bot"]')


def _send(driver, prompt: str, upload: Path | None = None) -> list:
    """Type (and attach), press Enter, wait until the answer is complete; the new bot messages."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    before = len(_bot_messages(driver))
    box = driver.find_element(By.CSS_SELECTOR, '#prompt textarea')
    if upload is not None:
        driver.find_element(By.CSS_SELECTOR, '#prompt input[type=file]').send_keys(str(upload))
        _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, '#prompt .thumbnail-item'))
    box.send_keys(prompt, Keys.ENTER)
    _wait(driver, lambda d: len(_bot_messages(d)) > before)
    # done when gradio's progress tracker on the chat is hidden again
    _wait(driver, lambda d: 'hide' in d.find_element(
        By.CSS_SELECTOR, '#chat [data-testid="status-tracker"]').get_attribute('class'))
    assert box.get_attribute('value') == ''  # emptied for the next question
    assert not driver.find_elements(By.CSS_SELECTOR, '#prompt .thumbnail-item')
    return _bot_messages(driver)[before:]


def _image_sizes(driver, messages) -> list:
    """(naturalWidth, naturalHeight) of each image in ``messages``, once they have loaded."""
    from selenium.webdriver.common.by import By
    images = [img for m in messages for img in m.find_elements(By.TAG_NAME, 'img')]
    _wait(driver, lambda d: all(d.execute_script('return arguments[0].complete', i)
                                for i in images))
    return [tuple(driver.execute_script('return [arguments[0].naturalWidth, '
                                        'arguments[0].naturalHeight]', i)) for i in images]


def _picture_size(driver) -> tuple:
    """The natural size of the picture beside the chat (the last answer's overlay)."""
    from selenium.webdriver.common.by import By
    return _image_sizes(driver, driver.find_elements(By.ID, 'picture'))[-1]


def test_chat_in_headless_chromium(server, browser, tmp_path):
    image = tmp_path / 'shapes.png'
    Image.fromarray((np.random.RandomState(0).rand(64, 96, 3) * 255).astype(np.uint8)).save(image)
    notes = tmp_path / 'notes.txt'
    notes.write_text('this is not an image')
    browser.get(server)
    _wait(browser, lambda d: d.find_elements('css selector', '#prompt textarea'))

    first = _send(browser, 'Segment the red circle.', image)
    assert [m.text for m in first] == ['[SEG]', '']  # the answer, then its overlay
    assert _image_sizes(browser, first) == [(96, 64)] and _picture_size(browser) == (96, 64)
    shown = browser.find_element('css selector', '#picture img').get_attribute('src')
    assert shown == first[1].find_element('tag name', 'img').get_attribute('src')  # the overlay

    second = _send(browser, 'Now segment the blue square.')  # no re-upload
    assert [m.text for m in second] == ['[SEG]', '']
    assert _image_sizes(browser, second) == [(96, 64)]  # drawn on the first turn's image

    bad = _send(browser, 'What is this?', notes)
    assert [m.text for m in bad] == ['\N{WARNING SIGN} notes.txt is not a readable image']

    third = _send(browser, 'Segment it once more.')  # still serving, still the first image
    assert [m.text for m in third] == ['[SEG]', ''] and _image_sizes(browser, third) == [(96, 64)]

    # an example fills the box with a demo-world image (64x64) and its question
    browser.find_elements('css selector', '#examples .gallery-item')[0].click()
    _wait(browser, lambda d: d.find_elements('css selector', '#prompt .thumbnail-item'))
    assert 'segmentation mask of' in browser.find_element('css selector', '#prompt textarea') \
        .get_attribute('value')
    example = _send(browser, '')
    assert [m.text for m in example] == ['[SEG]', ''] and _picture_size(browser) == (64, 64)

    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and [u for u in loaded if not u.startswith(server)] == []  # offline: no CDN


def test_taken_port_is_one_clear_line_before_the_model_loads(tmp_path):
    import socket
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, 'tools/web_demo.py', str(tmp_path / 'no_such.py'),
                               'none', '--port', str(port)], cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == \
        f'error: cannot listen on 127.0.0.1:{port}: Address already in use'
