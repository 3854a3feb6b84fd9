"""ullava: one multimodal LLM for many vision-language tasks, on MMEngine.

The full stack (torch, a source-built mmcv with ops, pinned OpenMMLab packages) is installed by
``make setup`` (tools/install/bootstrap.sh); see docs/install.md. ``install_requires`` names what
ullava imports, with the versions measured to work together.
"""
from pathlib import Path

from setuptools import find_packages, setup


def requirements(name: str) -> list[str]:
    lines = (Path(__file__).parent / 'requirements' / name).read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith('#')]


setup(
    name='ullava',
    version='0.1.0',
    description='u-LLaVA reimplemented on MMEngine: captioning, VQA, RES, salient, semantic '
                'segmentation and REC with one multimodal LLM',
    long_description=Path(__file__).with_name('README.md').read_text(encoding='utf-8')
    if Path(__file__).with_name('README.md').exists() else '',
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=find_packages(include=['ullava', 'ullava.*']),
    # templates and the class lists of ADE20K / COCO-Stuff / PASCAL-Part / PACO-LVIS
    package_data={'ullava': ['tasks/*/templates.json', 'tasks/*/classes/*.json',
                             'tasks/*/classes/*.md']},
    install_requires=['torch>=2.6', 'torchvision', 'mmcv>=2.0.0,<2.2.0'] + requirements('runtime.txt'),
    extras_require={'tests': requirements('tests.txt')},
)
