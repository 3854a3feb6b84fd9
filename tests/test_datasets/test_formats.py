"""Every dataset class on a small fixture in its exact annotation format: it loads, runs through
the demo pipeline, collates and gives the tiny model finite losses. And the error paths: a
missing image, a malformed record and a wrong-size mask raise a UserError naming the file, the
record and the field; with ``on_error='skip'`` bad records are skipped and counted."""
from __future__ import annotations

import copy
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ullava.utils import UserError

ROOT = Path(__file__).resolve().parents[2]
KIND_IDS = {'circle': 1, 'square': 2, 'triangle': 3, 'star': 4}


# ----------------------------------------------------------------------------- fixtures
def write_refcoco_original(world: Path, out: Path, split_of=lambda i: 'train' if i % 3 else 'val',
                           refs_name: str = 'refs(unc).p') -> Path:
    """The world's referred shapes in the original layout: ``refs(unc).p`` + ``instances.json``.

    ``file_name`` is relative to the world folder (passed as ``data_prefix.img_path``).
    """
    records = json.loads((world / 'train/refcoco_train.json').read_text())
    images, anns, refs = {}, [], []
    for i, r in enumerate(records):
        images[r['image_id']] = dict(id=r['image_id'], file_name=r['image_path'],
                                     height=r['height'], width=r['width'])
        anns.append(dict(id=r['ann_id'], image_id=r['image_id'], segmentation=r['segmentation'],
                         bbox=r['bbox'], area=r['bbox'][2] * r['bbox'][3], iscrowd=0,
                         category_id=KIND_IDS[r['category']]))
        refs.append(dict(ref_id=i, ann_id=r['ann_id'], image_id=r['image_id'], split=split_of(i),
                         category_id=KIND_IDS[r['category']], sent_ids=list(range(3 * i, 3 * i + 3)),
                         sentences=[dict(sent=s, raw=s, tokens=s.split(), sent_id=3 * i + j)
                                    for j, s in enumerate(r['sentences'])]))
    folder = out / 'refcoco'
    folder.mkdir(parents=True, exist_ok=True)
    (folder / 'instances.json').write_text(json.dumps(dict(
        images=list(images.values()), annotations=anns,
        categories=[dict(id=v, name=k, supercategory='shape') for k, v in KIND_IDS.items()])))
    with open(folder / refs_name, 'wb') as f:
        pickle.dump(refs, f, protocol=2)  # the released files are protocol-2 pickles
    return out


@pytest.fixture(scope='module')
def refcoco_original(world, tmp_path_factory) -> Path:
    return write_refcoco_original(world, tmp_path_factory.mktemp('refcoco_original'))


@pytest.fixture(scope='module')
def salient_folders(world, tmp_path_factory) -> Path:
    """DUTS-style folder pairs: ``imgs/<name>.png`` + ``masks/<name>.png``."""
    out = tmp_path_factory.mktemp('duts')
    (out / 'imgs').mkdir()
    (out / 'masks').mkdir()
    for rec in json.loads((world / 'train/salient_train.json').read_text())[:4]:
        name = Path(rec['image_path']).name
        shutil.copy(world / rec['image_path'], out / 'imgs' / name)
        shutil.copy(world / rec['label_path'], out / 'masks' / name)
    return out


@pytest.fixture(scope='module')
def pipeline():
    from mmengine.config import Config
    return Config.fromfile(str(ROOT / 'configs/demo/ullava_tiny_demo.py')).pipeline


@pytest.fixture(scope='module')
def model(tiny_cfg):
    """The tiny model (as conftest's ``tiny_model``), built once for this module."""
    from ullava.registry import MODELS
    torch.manual_seed(0)
    return MODELS.build(tiny_cfg.model)


def build(cfg: dict, pipeline=None, **kwargs):
    from mmengine.registry import init_default_scope

    from ullava.registry import DATASETS
    init_default_scope('ullava')  # the pipeline's transforms are ullava's, as in a config
    cfg = dict(cfg, **kwargs)
    if pipeline is not None:
        cfg['pipeline'] = copy.deepcopy(pipeline)
    return DATASETS.build(cfg)


def infos(dataset) -> list[dict]:
    """The data infos (``data_list`` itself is emptied when MMEngine serialises it)."""
    return [dataset.get_data_info(i) for i in range(len(dataset))]


def format_cases(world: Path, refcoco_original: Path, salient_folders: Path) -> dict:
    w = str(world)
    return {
        'coco_caption': dict(type='COCOCaptionDataset', data_root=w,
                             ann_file='train/captions_train.json'),
        'cc3m_chat': dict(type='LLaVADataset', data_root=w, ann_file='train/cc3m_chat_train.json'),
        'llava_instruct': dict(type='LLaVADataset', data_root=w,
                               ann_file='train/llava_vqa_train.json'),
        'tgif_video': dict(type='LLaVADataset', data_root=w, ann_file='train/tgif_train.json'),
        'vqav2': dict(type='VQAv2Dataset', data_root=w, ann_file='train/vqa_train.json'),
        'refcoco': dict(type='RefCOCODataset', data_root=w, ann_file='train/refcoco_train.json'),
        'refcoco_original': dict(type='RefCOCOOriginalDataset', data_root=str(refcoco_original),
                                 ann_file='refcoco/instances.json',
                                 split_file='refcoco/refs(unc).p', split='train',
                                 data_prefix=dict(img_path=w)),
        'salient': dict(type='SalientDataset', data_root=w, ann_file='train/salient_train.json'),
        'salient_folder': dict(type='SalientFolderDataset', data_root=str(salient_folders),
                               img_dir='imgs', mask_dir='masks'),
        'semseg': dict(type='SemanticSegDataset', data_root=w, ann_file='train/semantic_train.json',
                       class_names='train/semantic_classes.json', prompt_classes='all'),
    }


FORMATS = ['coco_caption', 'cc3m_chat', 'llava_instruct', 'tgif_video', 'vqav2', 'refcoco',
           'refcoco_original', 'salient', 'salient_folder', 'semseg']
MASK_FORMATS = {'refcoco', 'refcoco_original', 'salient', 'salient_folder', 'semseg'}


# ----------------------------------------------------------------------------- loading
@pytest.mark.parametrize('name', FORMATS)
def test_format_loads_collates_and_trains(name, world, refcoco_original, salient_folders,
                                          pipeline, model):
    from ullava.datasets import ullava_collate
    np.random.seed(0)
    dataset = build(format_cases(world, refcoco_original, salient_folders)[name], pipeline)
    assert len(dataset) >= 2 and dataset.num_skipped == 0
    batch = ullava_collate([dataset[0], dataset[1]])
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    assert 'loss_ce' in losses
    for key, value in losses.items():
        assert torch.isfinite(value).all(), (name, key, value)
    if name in MASK_FORMATS:  # the masks really reached the SAM head
        assert losses['loss_mask_bce'] > 0
        assert all(len(s.gt_masks_sam) >= 1 for s in batch['data_samples'])


def test_refcoco_original_matches_repacked(world, refcoco_original):
    """Both layouts of the same refs give the same data infos (same pipeline and templates)."""
    cases = format_cases(world, refcoco_original, world)
    for test_mode in (False, True):
        repacked = build(cases['refcoco'], test_mode=test_mode)
        original = build(cases['refcoco_original'], test_mode=test_mode)
        wanted = {r['ann_id'] for i, r in enumerate(
            json.loads((world / 'train/refcoco_train.json').read_text())) if i % 3}
        expected = [d for d in infos(repacked) if d['img_id'] in wanted]
        assert len(original) == len(expected) > 0
        for a, b in zip(infos(original), expected):
            for key in ('img_path', 'mask_anns', 'category', 'img_id', 'sentence', 'sentences'):
                assert a.get(key) == b.get(key), key


def test_refcoco_several_refs_per_sample(world, pipeline, model):
    """``refs_per_sample=3``: one image per training sample, up to 3 of its objects asked about in
    turn; mask i is the object of turn i; test mode keeps one sample per sentence."""
    from ullava.datasets import ullava_collate
    case = dict(type='RefCOCODataset', data_root=str(world), ann_file='train/refcoco_train.json')
    records = json.loads((world / 'train/refcoco_train.json').read_text())
    per_image: dict = {}
    for r in records:
        per_image.setdefault(r['image_path'], []).append(r)
    grouped = build(case, refs_per_sample=3)
    assert len(grouped) == len(per_image)
    for info in infos(grouped):
        refs = per_image[os.path.relpath(info['img_path'], world)]
        turns = info['conversations']
        assert len(info['mask_anns']) == len(turns) // 2 == min(3, len(refs))
        assert turns[0]['value'].startswith('<image>') and \
            not any('<image>' in t['value'] for t in turns[1:])
        for question, ann in zip(turns[0::2], info['mask_anns']):
            ref = next(r for r in refs if r['segmentation'] == ann['segmentation'])
            assert any(s in question['value'] for s in ref['sentences'])
    batch = ullava_collate([build(case, pipeline, refs_per_sample=3)[i] for i in range(2)])
    assert [len(s.gt_masks) for s in batch['data_samples']] == \
        [min(3, len(refs)) for refs in list(per_image.values())[:2]]
    losses = model(**model.data_preprocessor(batch, True), mode='loss')
    assert all(torch.isfinite(v).all() for v in losses.values()) and losses['loss_mask_bce'] > 0
    assert len(build(case, refs_per_sample=3, test_mode=True)) == len(build(case, test_mode=True))
    with pytest.raises(UserError, match='refs_per_sample'):
        build(case, refs_per_sample=0)


def test_vqa_several_questions_per_sample(world, pipeline, model, tmp_path):
    """``questions_per_sample=3``: one image per training sample, up to 3 of its questions in
    turn, each answered with its most common answer; the image shown once; test mode keeps one
    sample per question; the default (1) is the reference's one question a sample. The answers
    are in the official VQAv2 shape ({answer, answer_confidence, answer_id})."""
    from collections import Counter

    from ullava.datasets import ullava_collate
    records = json.loads((world / 'train/vqa_train.json').read_text())
    official = [dict(r, answers=[dict(answer=a, answer_confidence='yes', answer_id=k + 1)
                                 for k, a in enumerate(r['answers'])]) for r in records]
    (tmp_path / 'vqa_official.json').write_text(json.dumps(official))
    case = dict(type='VQAv2Dataset', data_root=str(world),
                ann_file=str(tmp_path / 'vqa_official.json'))
    per_image: dict = {}
    for r in records:
        per_image.setdefault(r['image'], []).append(r)
    grouped = build(case, questions_per_sample=3)
    assert len(grouped) == len(per_image)
    for info in infos(grouped):
        asked = per_image[os.path.relpath(info['img_path'], world)]
        turns = info['conversations']
        assert len(turns) // 2 == min(3, len(asked))
        assert sum(t['value'].count('<image>') for t in turns) == 1 and '<image>' in turns[0]['value']
        seen = set()
        for question, answer in zip(turns[0::2], turns[1::2]):
            record = next(r for r in asked if r['question'] in question['value'])
            assert answer['value'] == Counter(record['answers']).most_common(1)[0][0]
            seen.add(record['question_id'])
        assert len(seen) == len(turns) // 2  # distinct questions
    batch = ullava_collate([build(case, pipeline, questions_per_sample=3)[i] for i in range(2)])
    losses = model(**model.data_preprocessor(batch, True), mode='loss')
    assert torch.isfinite(losses['loss_ce'])
    single = build(case)
    assert len(single) == len(records) and len(infos(single)[0]['conversations']) == 2
    assert len(build(case, questions_per_sample=3, test_mode=True)) == len(build(case, test_mode=True))
    with pytest.raises(UserError, match='questions_per_sample'):
        build(case, questions_per_sample=0)


def test_refcoco_original_splits(world, refcoco_original):
    case = format_cases(world, refcoco_original, world)['refcoco_original']
    train, val = build(case), build(case, split='val')
    assert not {d['ref_id'] for d in infos(train)} & {d['ref_id'] for d in infos(val)}
    assert all(d['ref_id'] % 3 == 0 for d in infos(val))
    with pytest.raises(UserError, match=r"no refs in split 'testA'.*\['train', 'val'\]"):
        build(case, split='testA')


def test_refs_pickle_with_code_is_refused(world, tmp_path):
    """A refs file that references any global (the way a pickle runs code) is not executed."""
    marker = tmp_path / 'pwned'

    class Evil:
        def __reduce__(self):
            return os.mkdir, (str(marker),)

    root = write_refcoco_original(world, tmp_path / 'data')
    with open(root / 'refcoco/refs(unc).p', 'wb') as f:
        pickle.dump([Evil()], f, protocol=2)
    case = format_cases(world, root, world)['refcoco_original']
    with pytest.raises(UserError, match=r'refs\(unc\)\.p is not a readable refs pickle.*posix\.mkdir'):
        build(case)
    assert not marker.exists()


def test_data_prefix_separates_images_from_annotations(world, tmp_path):
    """The stage II layout: ``<root>/annotations/*.json`` with media under ``data_prefix``."""
    (tmp_path / 'annotations').mkdir()
    (tmp_path / 'images').mkdir()
    (tmp_path / 'images/train').symlink_to(world / 'train')
    for name in ('refcoco_train.json', 'semantic_train.json', 'semantic_classes.json'):
        shutil.copy(world / 'train' / name, tmp_path / 'annotations' / name)
    common = dict(data_root=str(tmp_path), data_prefix=dict(img_path='images/'))
    refcoco = build(dict(type='RefCOCODataset', ann_file='annotations/refcoco_train.json', **common))
    semseg = build(dict(type='SemanticSegDataset', ann_file='annotations/semantic_train.json',
                        class_names='annotations/semantic_classes.json', **common))
    info = semseg.get_data_info(0)
    assert refcoco.get_data_info(0)['img_path'] == str(tmp_path / 'images/train/images/000000.png')
    assert info['sem_seg_path'] == str(tmp_path / 'images/train/ade_labels/000000.png')


# ----------------------------------------------------------------------------- error paths
def _broken(world: Path, tmp_path: Path, ann: str, mutate) -> str:
    """A copy of a world annotation file with records 1 and 3 broken by ``mutate``."""
    records = json.loads((world / ann).read_text())
    for i in (1, 3):
        mutate(records[i])
    path = tmp_path / Path(ann).name
    path.write_text(json.dumps(records))
    return str(path)


def _set(key, value):
    return lambda r: r.__setitem__(key, value)


def _drop(key):
    return lambda r: r.pop(key)


BAD_RECORDS = [  # (dataset type, annotation file, mutation, field named in the error)
    ('RefCOCODataset', 'train/refcoco_train.json', _set('image_path', 'train/images/nope.png'),
     'image_path'),
    ('RefCOCODataset', 'train/refcoco_train.json', _drop('segmentation'), 'segmentation'),
    ('RefCOCODataset', 'train/refcoco_train.json', _set('bbox', 'x'), 'bbox'),
    ('RefCOCODataset', 'train/refcoco_train.json', _set('sentences', 'the red circle'),
     'sentences'),
    ('LLaVADataset', 'train/llava_vqa_train.json', _set('image', 'train/images/nope.png'), 'image'),
    ('LLaVADataset', 'train/cc3m_chat_train.json', _set('conversations', 'hi'), 'conversations'),
    ('LLaVADataset', 'train/tgif_train.json', _set('video', 'train/videos/nope.gif'), 'video'),
    ('VQAv2Dataset', 'train/vqa_train.json', _drop('question'), 'question'),
    ('VQAv2Dataset', 'train/vqa_train.json', _set('answers', [1, 2]), 'answers'),
    ('VQAv2Dataset', 'train/vqa_train.json', _set('image', 7), 'image'),
    ('SalientDataset', 'train/salient_train.json', _set('label_path', 'train/nope.png'),
     'label_path'),
    ('SalientDataset', 'train/salient_train.json', _set('gpt', 3), 'gpt'),
    ('SemanticSegDataset', 'train/semantic_train.json', _drop('classes'), 'classes'),
    ('SemanticSegDataset', 'train/semantic_train.json', _set('classes', [{'class_id': 'x'}]),
     'classes[0]'),
]


def _extra(type_: str) -> dict:
    return dict(class_names='train/semantic_classes.json') if type_ == 'SemanticSegDataset' else {}


@pytest.mark.parametrize('type_, ann, mutate, field', BAD_RECORDS,
                         ids=[f'{t}-{f}' for t, _, _, f in BAD_RECORDS])
def test_bad_record_raises_then_skips(type_, ann, mutate, field, world, tmp_path):
    ann_file = _broken(world, tmp_path, ann, mutate)
    cfg = dict(type=type_, data_root=str(world), ann_file=ann_file, **_extra(type_))
    with pytest.raises(UserError) as info:
        build(cfg)
    message = str(info.value)
    assert ann_file in message and 'record 1' in message and field in message, message
    full = build(dict(cfg, ann_file=str(world / ann)))
    skipping = build(cfg, on_error='skip')
    assert skipping.num_skipped == 2
    assert len(skipping) == len(full) - 2


def test_bad_caption_image_raises_then_skips(world, tmp_path):
    coco = json.loads((world / 'train/captions_train.json').read_text())
    coco['images'][1]['file_name'] = 'train/images/nope.png'
    del coco['images'][3]['file_name']
    path = tmp_path / 'captions.json'
    path.write_text(json.dumps(coco))
    cfg = dict(type='COCOCaptionDataset', data_root=str(world), ann_file=str(path))
    with pytest.raises(UserError, match=rf'{path} record 1: file_name .*nope.png does not exist'):
        build(cfg)
    assert build(cfg, on_error='skip').num_skipped == 2


def test_missing_salient_folder_mask(world, salient_folders, tmp_path):
    shutil.copytree(salient_folders, tmp_path / 'duts')
    first = sorted((tmp_path / 'duts/masks').iterdir())[1]
    first.unlink()
    cfg = dict(type='SalientFolderDataset', data_root=str(tmp_path / 'duts'), img_dir='imgs',
               mask_dir='masks')
    with pytest.raises(UserError, match=r'imgs record 1: label_path .* does not exist'):
        build(cfg)
    assert build(cfg, on_error='skip').num_skipped == 1


@pytest.mark.parametrize('mutate, field', [
    (lambda r: r['sentences'].__setitem__(0, {'raw': 7}), 'sentences'),
    (lambda r: r.pop('sentences'), 'sentences'),
    (lambda r: r.__setitem__('ann_id', 'x'), 'ann_id'),
    (lambda r: r.__setitem__('ann_id', 999999), 'ann_id'),
])
def test_refcoco_original_bad_ref(mutate, field, world, tmp_path):
    root = write_refcoco_original(world, tmp_path, split_of=lambda i: 'train')
    refs_file = root / 'refcoco/refs(unc).p'
    with open(refs_file, 'rb') as f:
        refs = pickle.load(f)  # our own fixture, written just above
    for i in (1, 3):
        mutate(refs[i])
    with open(refs_file, 'wb') as f:
        pickle.dump(refs, f, protocol=2)
    case = format_cases(world, root, world)['refcoco_original']
    with pytest.raises(UserError) as info:
        build(case)
    assert str(refs_file) in str(info.value) and 'ref 1:' in str(info.value)
    assert field in str(info.value)
    skipping = build(case, on_error='skip')
    assert skipping.num_skipped == 2 and len(skipping) == len(refs) - 2


def test_refcoco_original_missing_image(world, tmp_path):
    root = write_refcoco_original(world, tmp_path, split_of=lambda i: 'train')
    instances = json.loads((root / 'refcoco/instances.json').read_text())
    instances['images'][0]['file_name'] = 'train/images/nope.png'
    (root / 'refcoco/instances.json').write_text(json.dumps(instances))
    case = format_cases(world, root, world)['refcoco_original']
    with pytest.raises(UserError, match=r'refs\(unc\)\.p ref 0: field "image_id" 0: image .*nope.png'):
        build(case)
    assert build(case, on_error='skip').num_skipped >= 1


def test_missing_image_at_load_time(world, tmp_path, pipeline):
    """With ``check_files=False`` a missing image is found by the pipeline, named the same way."""
    ann_file = _broken(world, tmp_path, 'train/refcoco_train.json',
                       _set('image_path', 'train/images/nope.png'))
    cfg = dict(type='RefCOCODataset', data_root=str(world), ann_file=ann_file, check_files=False)
    dataset = build(cfg, pipeline, test_mode=True)
    index = next(i for i, d in enumerate(infos(dataset)) if d['record_idx'] == 1)
    with pytest.raises(UserError, match=rf'{ann_file} record 1: img_path .*nope.png does not exist'):
        dataset[index]


def _small_rle(record: dict) -> None:
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(np.ones((32, 32), np.uint8)))
    record['segmentation'] = dict(size=[32, 32], counts=rle['counts'].decode())


def test_wrong_size_mask_raises_then_skips(world, tmp_path, pipeline):
    ann_file = _broken(world, tmp_path, 'train/refcoco_train.json', _small_rle)
    cfg = dict(type='RefCOCODataset', data_root=str(world), ann_file=ann_file)
    dataset = build(cfg, pipeline)
    with pytest.raises(UserError, match=rf'{ann_file} record 1: mask_anns\[0\] has size '
                                        r'\(32, 32\) but the image is \(64, 64\)'):
        dataset[1]
    skipping = build(cfg, pipeline, on_error='skip')
    np.random.seed(0)
    sample = skipping[1]  # skipped, counted, and another sample drawn in its place
    assert skipping.num_skipped >= 1
    assert sample['data_samples'].metainfo['record_idx'] not in (1, 3)


def test_wrong_size_salient_mask(world, tmp_path, pipeline):
    records = json.loads((world / 'train/salient_train.json').read_text())
    small = tmp_path / 'small.png'
    Image.fromarray(np.full((20, 30), 255, np.uint8)).save(small)
    records[1]['label_path'] = str(small)
    path = tmp_path / 'salient.json'
    path.write_text(json.dumps(records))
    dataset = build(dict(type='SalientDataset', data_root=str(world), ann_file=str(path)), pipeline)
    with pytest.raises(UserError, match=rf'{path} record 1: mask_anns\[0\] has size \(20, 30\)'):
        dataset[1]
