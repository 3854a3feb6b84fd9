"""ullava.engine.launch.StartupLog: the console held while a tool starts, replayed or dropped."""
import io
import logging

import pytest

from ullava.engine.launch import StartupLog, cli_main
from ullava.utils import UserError


class Text:
    """The text a handler wrote so far: a StringIO's, or a log file's."""

    def __init__(self, handler):
        self.handler = handler

    def getvalue(self) -> str:
        self.handler.flush()
        stream = self.handler.stream
        return stream.getvalue() if isinstance(stream, io.StringIO) else \
            open(self.handler.baseFilename).read()


@pytest.fixture()
def logger(tmp_path):
    """A logger shaped as MMLogger's: a console StreamHandler and a log FileHandler."""
    log = logging.getLogger('ullava_test_startup')
    log.setLevel(logging.INFO)
    handlers = [logging.StreamHandler(io.StringIO()), logging.FileHandler(tmp_path / 'run.log')]
    for h in handlers:
        log.addHandler(h)
    yield log, Text(handlers[0]), Text(handlers[1])
    for h in handlers:
        log.removeHandler(h)
        h.close()


def test_held_records_are_replayed_in_order_and_the_file_gets_them_at_once(logger):
    log, console, file = logger
    startup = StartupLog()
    startup.hold(log)
    log.info('building')
    log.warning('a registry scope')
    log.error('this one is never held')
    assert console.getvalue() == 'this one is never held\n'
    assert file.getvalue() == 'building\na registry scope\nthis one is never held\n'
    startup.release()
    assert console.getvalue() == 'this one is never held\nbuilding\na registry scope\n'
    log.info('running')
    assert console.getvalue().endswith('running\n')
    startup.release()  # idempotent
    assert console.getvalue().count('building') == 1


def test_dropped_records_never_reach_the_console(logger):
    log, console, file = logger
    startup = StartupLog()
    startup.hold(log)
    startup.dropping = True
    log.info('Config: ...')  # what the quiet runner drops: the dump goes to the file only
    startup.dropping = False
    log.info('kept')
    startup.release(replay=False)
    assert console.getvalue() == '' and 'Config: ...' in file.getvalue()
    log.info('after')
    assert console.getvalue() == 'after\n'  # no filter left behind


def test_cli_main_prints_the_error_first_and_unholds_the_console(logger, capsys):
    log, console, _ = logger

    @cli_main
    def tool():
        StartupLog.start().hold(log)
        log.info('start-up chatter')
        raise UserError('bad record')

    with pytest.raises(SystemExit) as exit_:
        tool()
    assert exit_.value.code == 2
    assert capsys.readouterr().err == 'error: bad record\n'
    assert console.getvalue() == '' and StartupLog.current() is None
    log.info('later')
    assert console.getvalue() == 'later\n'
