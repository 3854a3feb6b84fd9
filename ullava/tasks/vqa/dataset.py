"""VQAv2-style records: ``{"question_id", "image", "question", "answers": [...]}``.

Training answers with the most common annotator answer; test keeps all answers for the VQA
accuracy. LLaVA-Instruct-150K multi-turn conversations use :class:`ullava.datasets.LLaVADataset`.

``questions_per_sample=k`` (training only; the reference asks one) groups the questions of one
image and asks up to k of them in one multi-turn conversation, as LLaVA-1.5's VQAv2 training data
does: k answers are supervised for one pass over the image's tokens.
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
                 questions_per_sample: int = 1, **kwargs) -> None:
        if not isinstance(questions_per_sample, int) or questions_per_sample < 1:
            raise UserError(f'VQAv2Dataset: questions_per_sample must be an integer >= 1, '
                            f'got {questions_per_sample!r}')
        self.templates = load_templates(templates, TEMPLATES)
        self.questions_per_sample = questions_per_sample
        super().__init__(*args, task=task, **kwargs)

    def load_data_list(self) -> list[dict]:
        data_list = super().load_data_list()
        if self.test_mode or self.questions_per_sample == 1:
            return data_list
        return self.group_by_image(data_list)

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
        """One question/answer turn: the sample's own, or (grouped by ``questions_per_sample``)
        up to that many questions of its image in random order, the image shown in the first."""
        info = super().get_data_info(idx)
        rng = self.sample_rng(idx)
        group = info.pop('group', None)
        chosen = [info] if group is None else \
            [group[i] for i in rng.permutation(len(group))[:self.questions_per_sample]]
        info['conversations'] = []
        for turn, qa in enumerate(chosen):
            template = pick(self.templates['train'], self.test_mode, self.templates['test'], rng)
            question = template.format(qa['question'])
            info['conversations'] += [
                {'from': 'human', 'value': self.without_image(question) if turn else question},
                {'from': 'gpt', 'value': qa['answer']}]
        return info
