"""The demo's goal table shows every metric, numbers and the words metrics say about themselves."""
from ullava.demo.report import goal_table


def test_goal_table_shows_string_valued_metrics():
    metrics = {'res/cIoU': 0.75, 'caption/tokenizer': 'ptb', 'rec/definition': 'iou>0.5'}
    table, _ = goal_table(metrics)
    rows = {line.split()[0]: line.split()[1:] for line in table.splitlines()[1:]}
    assert rows['caption/tokenizer'] == ['ptb']
    assert rows['rec/definition'] == ['iou>0.5']
    assert rows['res/cIoU'][0] == '0.7500'
