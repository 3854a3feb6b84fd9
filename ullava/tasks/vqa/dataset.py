"""VQAv2-style records: ``{"question_id", "image", "question", "answers": [...]}``.

Training answers with the most common annotator answer; test keeps all answers for the VQA
accuracy. LLaVA-Instruct-150K multi-turn conversations use :class:`ullava.datasets.LLaVADataset`.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from ullava.datasets.base import ULLaVADataset
from ullava.registry import DATASETS
from ullava.tasks.templates import load_templates, pick
from ullava.utils import UserError

TEMPLATES = str(Path(__file__).with_name('templates.json'))


@DATASETS.register_module()
class VQAv2Dataset(ULLaVADataset):

    def __init__(self, *args, task: str = 'vqa', templates: str | dict = TEMPLATES,
                 **kwargs) -> None:
        self.templates = load_templates(templates, TEMPLATES)
        super().__init__(*args, task=task, **kwargs)

    def parse_record(self, record: dict, index: int) -> list[dict]:
        question = self.require(record, 'question', index, str)
        answers = self.require(record, 'answers', index, list)
        answers = [a['answer'] if isinstance(a, dict) else a for a in answers]  # VQAv2 or flat
        if not answers or not all(isinstance(a, str) for a in answers):
            raise UserError(f'{self.ann_file} record {index}: "answers" must be a non-empty list '
                            f'of strings')
        return [dict(img_path=self.media_path(record, 'image', index), question=question,
                     gt_answers=answers, answer=Counter(answers).most_common(1)[0][0],
                     img_id=record.get('question_id', index))]

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        rng = self.sample_rng(idx)
        template = pick(self.templates['train'], self.test_mode, self.templates['test'], rng)
        info['conversations'] = [{'from': 'human', 'value': template.format(info['question'])},
                                 {'from': 'gpt', 'value': info['answer']}]
        return info
