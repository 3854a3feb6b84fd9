"""The readers on records in the u-LLaVA reference's EXACT annotation shapes (digest, "Annotation
formats"), built here with pycocotools and numpy, not with ullava's own writers. Every expected
mask is computed in the test from the reference's definition, independently of the reader:

* RefCOCO family: ``segmentation`` always a list: polygons (``frPyObjects(seg, h, w)``, merged),
  RLE parts with string counts (summed into one mask), or ``[]`` (no mask);
* ADE20K: label maps reduced as mmseg's ``reduce_zero_label``, ``class_id`` after the reduction;
* COCO-Stuff: classes whose name contains "-" ignored (255);
* PACO-LVIS / PASCAL-Part: class-name strings + a parallel ``annotations`` list;
* salient: ``gpt`` = ``{"reason", "tag"}``, object = pixels equal to 255.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from ullava.utils import UserError

H, W = 40, 60
LOAD = [dict(type='LoadImage'), dict(type='LoadMasks')]
ADE_BOTTLE = 98  # "bottle" in ADE20K-150: raw label value 99


# ----------------------------------------------------------------------------- helpers
def build(cfg: dict, **kwargs):
    from mmengine.registry import init_default_scope

    from ullava.registry import DATASETS
    init_default_scope('ullava')
    return DATASETS.build(copy.deepcopy(dict(cfg, **kwargs)))


def write_json(path: Path, obj) -> str:
    path.write_text(json.dumps(obj))
    return str(path)


def write_png(path: Path, array: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path.name


def rect(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def rle_str(mask: np.ndarray) -> dict:
    """The reference files' RLE: pycocotools' compressed counts, decoded to ``str``."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return dict(size=list(rle['size']), counts=rle['counts'].decode())


def rle_list(mask: np.ndarray) -> dict:
    """An uncompressed RLE (COCO's ``iscrowd`` style): run lengths in column-major order,
    starting with a run of zeros; written out here so the test does not rely on the reader."""
    flat = mask.flatten(order='F').astype(np.uint8)
    counts, value, run = [], 0, 0
    for v in flat:
        if v == value:
            run += 1
        else:
            counts.append(run)
            value, run = v, 1
    counts.append(run)
    return dict(size=[H, W], counts=counts)


def polygons_mask(polygons: list) -> np.ndarray:
    """What the reference decodes polygons to (pycocotools, as its res_dataset.py)."""
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, H, W))) > 0


@pytest.fixture()
def root(tmp_path) -> Path:
    write_png(tmp_path / 'img.png', np.random.default_rng(0).integers(0, 255, (H, W, 3), np.uint8))
    return tmp_path


# ----------------------------------------------------------------------------- RefCOCO
POLYGONS = [[5, 5, 25, 5, 25, 20, 5, 20], [40, 10, 55, 10, 47, 35]]
PART_A, PART_B = rect(2, 12, 30, 50), rect(8, 30, 40, 58)  # overlapping RLE parts


def refcoco_records() -> list:
    base = dict(image_path='img.png', height=H, width=W, sentences=['the thing'],
                category='Cat', bbox=[1, 2, 10, 20])
    return [dict(base, segmentation=POLYGONS),
            dict(base, segmentation=[rle_str(PART_A), rle_str(PART_B)]),
            dict(base, segmentation=[]),
            dict(base, segmentation=[rle_str(PART_A)])]


def test_refcoco_segmentation_shapes(root):
    ann = write_json(root / 'refcoco_train.json', refcoco_records())
    dataset = build(dict(type='RefCOCODataset', data_root=str(root), ann_file=ann, pipeline=LOAD,
                         test_mode=True))
    masks = [dataset[i]['gt_masks'][0] for i in range(4)]
    expected = [polygons_mask(POLYGONS),  # polygons: pixel for pixel as pycocotools
                (PART_A.astype(int) + PART_B) > 0,  # the parts summed, then > 0
                np.zeros((H, W), bool),  # [] = no mask
                PART_A > 0]
    for got, want in zip(masks, expected):
        assert got.shape == (H, W) and (got == want).all()
    assert [int(m.sum()) for m in masks[1:3]] == [int(((PART_A + PART_B) > 0).sum()), 0]
    assert (dataset[0]['gt_boxes'][0] == [1, 2, 11, 22]).all()  # bbox xywh -> xyxy
    # the answer carries the category lower-cased, as the reference
    assert dataset.get_data_info(0)['conversations'][1]['value'] == \
        'Sure. Mask: [SEG]; Location: [LOC]; [tag]cat[/tag].'


def test_refcoco_declared_size_must_match_the_image(root):
    records = refcoco_records()[:2]
    records[0]['height'] = H + 1
    ann = write_json(root / 'refcoco_train.json', records)
    cfg = dict(type='RefCOCODataset', data_root=str(root), ann_file=ann, pipeline=LOAD)
    with pytest.raises(UserError) as info:
        build(cfg, test_mode=True)[0]
    message = str(info.value)
    assert ann in message and 'record 0' in message and 'height/width' in message
    assert f'{H + 1}/{W}' in message and f'{H}/{W}' in message
    skipping = build(cfg, on_error='skip')
    np.random.seed(0)
    assert skipping[0]['record_idx'] == 1 and skipping.num_skipped >= 1


def test_bad_values_are_quoted_short(root):
    records = refcoco_records()[:2]
    records[1]['sentences'] = 'lj`2=X;[1eN' * 40  # a string where a list belongs
    ann = write_json(root / 'refcoco_train.json', records)
    with pytest.raises(UserError) as info:
        build(dict(type='RefCOCODataset', data_root=str(root), ann_file=ann))
    message = str(info.value)
    assert 'record 1' in message and 'sentences' in message
    assert len(message) < len(ann) + 200 and 'lj`2=X;[1eN' in message


@pytest.mark.parametrize('counts', [7, '', '0', 'lj`2=X;[1eN' * 30])
def test_malformed_rle_is_one_short_line(root, counts):
    """Refused with one line, not decoded: pycocotools fills a short string's mask from
    uninitialised memory (an empty string gave ~1,900 random pixels)."""
    records = refcoco_records()[:1]
    records[0]['segmentation'] = [dict(size=[H, W], counts=counts)]
    ann = write_json(root / 'refcoco_train.json', records)
    dataset = build(dict(type='RefCOCODataset', data_root=str(root), ann_file=ann, pipeline=LOAD,
                         test_mode=True))
    with pytest.raises(UserError, match=r'record 0: mask_anns\[0\]\.segmentation is malformed') \
            as info:
        dataset[0]
    assert len(str(info.value)) < len(ann) + 150


def test_skip_messages_name_record_and_reason(root, monkeypatch):
    import ullava.datasets.base as base
    logged = []
    monkeypatch.setattr(base, 'print_log', lambda msg, *a, **k: logged.append(msg))
    records = refcoco_records()
    records[2]['bbox'] = [1, 2]
    ann = write_json(root / 'refcoco_train.json', records)
    dataset = build(dict(type='RefCOCODataset', data_root=str(root), ann_file=ann,
                         on_error='skip'))
    assert len(dataset) == 3 and dataset.num_skipped == 1
    assert any('record 2' in m and 'bbox' in m and 'skipped' in m for m in logged), logged


# ----------------------------------------------------------------------------- ADE20K
@pytest.fixture()
def ade(root) -> tuple[str, np.ndarray]:
    label = np.ones((H, W), np.uint8)  # raw 1 = "wall" (class 0)
    label[:10] = 0  # raw 0 = "other": ignored
    label[20:35, 5:30] = ADE_BOTTLE + 1
    write_png(root / 'ade/label.png', label)
    record = dict(image_path='img.png', label_path='ade/label.png',
                  classes=[{'class': 'bottle', 'class_id': ADE_BOTTLE},
                           {'class': 'wall', 'class_id': 0}])
    return write_json(root / 'ade20k.json', [record]), label


def test_ade20k_reduces_labels_before_matching_class_id(root, ade):
    ann, raw = ade
    dataset = build(dict(type='ADE20KDataset', data_root=str(root), ann_file=ann, pipeline=LOAD))
    out = dataset[0]
    assert dataset.class_names[ADE_BOTTLE] == 'bottle' and len(dataset.class_names) == 150
    assert out['prompt_class_ids'] == [0, ADE_BOTTLE]
    wall, bottle = out['gt_masks']  # in prompt order: ids [0, 98]
    assert bottle.sum() == (raw == ADE_BOTTLE + 1).sum() == 15 * 25  # not raw == 98 (0 px)
    assert (wall == (raw == 1)).all()
    expected = raw.astype(np.int64) - 1
    expected[raw == 0] = 255
    assert (out['gt_sem_seg'] == expected).all()


def test_ade20k_reduction_is_mmsegs(root, ade):
    pytest.importorskip('mmseg', reason='mmseg needs mmcv (being built)')
    from mmseg.datasets.transforms import LoadAnnotations
    ann, _ = ade
    ours = build(dict(type='ADE20KDataset', data_root=str(root), ann_file=ann,
                      pipeline=LOAD))[0]['gt_sem_seg']
    theirs = LoadAnnotations(reduce_zero_label=True)(dict(
        seg_map_path=str(root / 'ade/label.png'), reduce_zero_label=True, seg_fields=[]))
    assert (ours == theirs['gt_seg_map']).all()


def test_semseg_test_mode_prompts_every_class(root, ade):
    ann, _ = ade
    cfg = dict(type='ADE20KDataset', data_root=str(root), ann_file=ann, test_mode=True)
    info = build(cfg).get_data_info(0)
    assert info['prompt_class_ids'] == list(range(150))  # the GT's two classes not looked at
    assert info['conversations'][1]['value'].count('[SEG]') == 150
    assert build(cfg, max_test_prompts=8).get_data_info(0)['prompt_class_ids'] == list(range(8))
    present = build(cfg, test_prompt_classes='present').get_data_info(0)
    assert present['prompt_class_ids'] == [0, ADE_BOTTLE]


def test_plain_semseg_keeps_raw_values(root, ade):
    """Without the reduction (the demo world's label maps) class_id k is raw value k."""
    ann, raw = ade
    dataset = build(dict(type='SemanticSegDataset', data_root=str(root), ann_file=ann,
                         class_names='ade20k', pipeline=LOAD, background_id=None))
    bottle = dataset[0]['gt_masks'][1]
    assert bottle.sum() == (raw == ADE_BOTTLE).sum() == 0


def test_class_names_override_and_errors(root, ade):
    ann, _ = ade
    names = write_json(root / 'my_classes.json', [f'c{i}' for i in range(150)])
    dataset = build(dict(type='ADE20KDataset', data_root=str(root), ann_file=ann,
                         class_names='my_classes.json'))
    assert dataset.class_names[ADE_BOTTLE] == f'c{ADE_BOTTLE}'
    assert dataset.metainfo['classes'][0] == 'c0'
    with pytest.raises(UserError, match=r'class_names file not found: .*nope\.json.*ade20k'):
        build(dict(type='ADE20KDataset', data_root=str(root), ann_file=ann,
                   class_names='nope.json'))


# ----------------------------------------------------------------------------- COCO-Stuff
def test_cocostuff_dash_classes_are_ignored(root):
    from ullava.tasks.semseg import load_class_names
    names = load_class_names('cocostuff')
    building = names.index('building-other')
    assert len(names) == 182 and names[0] == 'person' and building == 95
    label = np.full((H, W), 255, np.uint8)
    label[:20] = 0  # person
    label[20:] = building
    write_png(root / 'stuff.png', label)
    record = dict(image_path='img.png', label_path='stuff.png',
                  classes=[{'class': 'person', 'class_id': 0},
                           {'class': 'building-other', 'class_id': building}])
    ann = write_json(root / 'cocostuff.json', [record])
    cfg = dict(type='COCOStuffDataset', data_root=str(root), ann_file=ann, pipeline=LOAD)
    out = build(cfg)[0]
    assert out['prompt_class_ids'] == [0]  # the "-" class is never asked about
    assert out['gt_masks'][0].sum() == 20 * W
    assert (out['gt_sem_seg'][20:] == 255).all() and (out['gt_sem_seg'][:20] == 0).all()
    dashed = [i for i, n in enumerate(names) if '-' in n]
    test_ids = build(cfg, test_mode=True).get_data_info(0)['prompt_class_ids']
    assert len(dashed) == 28 and len(test_ids) == 182 - 28 and not set(dashed) & set(test_ids)


# ----------------------------------------------------------------------------- PACO / PASCAL-Part
PACO_POLYGONS = [[2, 2, 20, 2, 20, 15], [30, 30, 50, 30, 50, 38, 30, 38]]
PACO_LIST, PACO_STR = rect(5, 25, 22, 40), rect(0, 8, 45, 60)


def paco_record(height: int = H) -> dict:
    seg = dict(height=height, width=W)
    return dict(image_path='img.png',
                classes=['Chair:Back', 'dog', 'bottle:cap', 'cup', 'mug:handle'],
                annotations=[dict(seg, bbox=[2, 2, 48, 36], segmentation=PACO_POLYGONS),
                             dict(seg, bbox=[22, 5, 18, 20], segmentation=rle_list(PACO_LIST)),
                             dict(seg, bbox=[45, 0, 15, 8], segmentation=rle_str(PACO_STR)),
                             dict(seg, bbox=[0, 0, 1, 1], segmentation=[[0, 0, 4, 0, 4, 4]]),
                             dict(seg, bbox=[0, 0, 1, 1], segmentation=rle_str(rect(1, 2, 1, 2)))])


def test_paco_records(root):
    ann = write_json(root / 'paco_lvis.json', [paco_record()])
    cfg = dict(type='PartSegDataset', data_root=str(root), ann_file=ann, pipeline=LOAD,
               class_names='paco_lvis')
    expected = {'chair:back': polygons_mask(PACO_POLYGONS), 'dog': PACO_LIST > 0,
                'bottle:cap': PACO_STR > 0}
    test = build(cfg, test_mode=True)
    out = test[0]
    turns = out['conversations']
    assert len(turns) == 10 and turns[0]['value'].startswith('<image>')
    assert turns[1]['value'] == 'Sure. Info: [SEG]; Location: [LOC]; [tag]chair:back[/tag].'
    for k, name in enumerate(['chair:back', 'dog', 'bottle:cap']):
        assert f'[tag]{name}[/tag]' in turns[2 * k + 1]['value']
        assert (out['gt_masks'][k] == expected[name]).all()
    assert (out['gt_boxes'][1] == [22, 5, 40, 25]).all()
    assert len(test.metainfo['classes']) == 531
    train = build(cfg)[0]  # up to 3 classes per training sample, masks in turn order
    assert len(train['conversations']) == 6 and len(train['gt_masks']) == 3
    for turn, mask in zip(train['conversations'][1::2], train['gt_masks']):
        name = turn['value'].split('[tag]')[1].split('[/tag]')[0]
        if name in expected:
            assert (mask == expected[name]).all()


def test_paco_bad_records(root):
    bad = paco_record()
    bad['annotations'] = bad['annotations'][:2]
    ann = write_json(root / 'paco.json', [paco_record(), bad])
    with pytest.raises(UserError, match=r'record 1: "annotations" has 2 entries but "classes"'):
        build(dict(type='PartSegDataset', data_root=str(root), ann_file=ann))
    ann = write_json(root / 'paco.json', [paco_record(height=H + 5)])
    dataset = build(dict(type='PartSegDataset', data_root=str(root), ann_file=ann, pipeline=LOAD,
                         test_mode=True))
    with pytest.raises(UserError, match=r'record 0: annotations\[0\] declares height/width'):
        dataset[0]


# ----------------------------------------------------------------------------- salient
@pytest.fixture()
def soft_mask() -> np.ndarray:
    """DUTS/MSRA style: a 255 core with a soft edge of 128..254 around it."""
    mask = np.zeros((H, W), np.uint8)
    mask[5:35, 10:50] = np.linspace(128, 254, 30 * 40).reshape(30, 40).astype(np.uint8)
    mask[10:30, 15:45] = 255
    return mask


def test_salient_reference_record(root, soft_mask):
    write_png(root / 'mask.png', soft_mask)
    record = dict(image_path='img.png', label_path='mask.png',
                  gpt=dict(reason='It is the Only RED object.', tag='Red Ball'))
    ann = write_json(root / 'MSRA-10K.json', [record])
    cfg = dict(type='SalientDataset', data_root=str(root), ann_file=ann, pipeline=LOAD)
    out = build(cfg)[0]
    assert out['conversations'][1]['value'] == \
        ('Sure. Mask: [SEG]; Location: [LOC]; [tag]red ball[/tag]. '
         'Explanation: it is the only red object.')
    assert out['gt_masks'][0].sum() == (soft_mask == 255).sum() == 20 * 30
    assert (out['gt_boxes'][0] == [15, 10, 45, 30]).all()
    above = build(cfg, mask_threshold=127)[0]['gt_masks'][0]
    assert above.sum() == (soft_mask > 127).sum() == 30 * 40


def test_salient_folder_counts_only_255(root, soft_mask, tmp_path):
    write_png(tmp_path / 'duts/imgs/a.png', np.zeros((H, W, 3), np.uint8))
    write_png(tmp_path / 'duts/masks/a.png', soft_mask)
    dataset = build(dict(type='SalientFolderDataset', data_root=str(tmp_path / 'duts'),
                         img_dir='imgs', mask_dir='masks', pipeline=LOAD))
    assert dataset[0]['gt_masks'][0].sum() == (soft_mask == 255).sum()


@pytest.mark.parametrize('gpt, field', [(dict(reason='x'), 'tag'),
                                        (dict(tag='x', reason=3), 'reason'),
                                        ([1, 2], 'got list')])
def test_salient_bad_gpt(root, gpt, field):
    write_png(root / 'mask.png', np.zeros((H, W), np.uint8))
    ann = write_json(root / 'sal.json',
                     [dict(image_path='img.png', label_path='mask.png', gpt=gpt)])
    with pytest.raises(UserError, match=rf'record 0: field "gpt".*{field}'):
        build(dict(type='SalientDataset', data_root=str(root), ann_file=ann))


# ----------------------------------------------------------------------------- mixture
def test_mixture_metainfo_is_per_dataset(root, ade):
    from ullava.registry import METRICS
    ann, _ = ade
    cocostuff = write_json(root / 'cocostuff.json', [dict(image_path='img.png',
                                                          label_path='ade/label.png', classes=[])])
    refcoco = write_json(root / 'refcoco_train.json', refcoco_records())
    mixture = build(dict(type='MixtureDataset', datasets=[
        dict(type='ADE20KDataset', data_root=str(root), ann_file=ann, task='semseg_ade'),
        dict(type='COCOStuffDataset', data_root=str(root), ann_file=cocostuff,
             task='semseg_stuff'),
        dict(type='RefCOCODataset', data_root=str(root), ann_file=refcoco)]))
    meta = mixture.metainfo
    assert 'classes' not in meta  # two different lists: no single answer
    assert [d['task'] for d in meta['datasets']] == ['semseg_ade', 'semseg_stuff', 'res']
    assert len(meta['classes_by_task']['semseg_ade']) == 150
    assert len(meta['classes_by_task']['semseg_stuff']) == 182
    metric = METRICS.build(dict(type='TaskMetric', task='semseg_stuff',
                                metric=dict(type='SemSegMetric')))
    metric.dataset_meta = meta
    assert metric.metric.dataset_meta['classes'][0] == 'person'
    res = METRICS.build(dict(type='TaskMetric', task='res', metric=dict(type='RESMetric')))
    res.dataset_meta = meta
    assert 'classes' not in res.metric.dataset_meta


def test_semseg_one_turn_per_class_as_the_reference(root, ade):
    ann, raw = ade
    out = build(dict(type='ADE20KDataset', data_root=str(root), ann_file=ann, pipeline=LOAD,
                     one_turn_per_class=True, max_prompts=3))[0]
    turns = out['conversations']
    assert [t['value'] for t in turns[1::2]] == [
        'Sure. Mask: [SEG]; Location: [LOC]; [tag]wall[/tag].',
        'Sure. Mask: [SEG]; Location: [LOC]; [tag]bottle[/tag].']
    assert turns[0]['value'].startswith('<image>') and '<image>' not in turns[2]['value']
    assert out['gt_masks'][1].sum() == (raw == ADE_BOTTLE + 1).sum()
    assert (out['gt_boxes'][1] == [5, 20, 30, 35]).all()  # the tight box of the class


def test_templates_overridden_by_key(root):
    """The reference's evaluation question without copying the task's templates file."""
    ann = write_json(root / 'refcoco_val.json', refcoco_records()[:1])
    question = '<image>\nOutput the segmentation mask of the {} in the image.'
    cfg = dict(type='RefCOCODataset', data_root=str(root), ann_file=ann, test_mode=True)
    info = build(cfg, templates=dict(test=question)).get_data_info(0)
    assert info['conversations'][0]['value'] == \
        '<image>\nOutput the segmentation mask of the the thing in the image.'
    assert info['conversations'][1]['value'].startswith('Sure. Mask: [SEG]; Location: [LOC];')
    with pytest.raises(UserError, match=r"templates: unknown keys \['tset'\]"):
        build(cfg, templates=dict(tset=question))
