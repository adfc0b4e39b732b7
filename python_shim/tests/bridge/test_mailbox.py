"""The bridge thread's mailbox: work posted for a child whose handshake runs is run by the handshake alone,
the rest waits; what the handshake left goes on with the rest; serve_for runs work as it comes."""

import os
import select
import threading
import time

from tsserve_shim.bridge.mailbox import Mailbox


def woken(mailbox: Mailbox) -> bool:
    return bool(select.select([mailbox.wake_fd], [], [], 0)[0])


def test_posted_work_wakes_the_thread_and_runs_in_order():
    mailbox, ran = Mailbox(), []
    mailbox.post(lambda: ran.append(1))
    mailbox.post(lambda: ran.append(2))
    assert woken(mailbox)
    mailbox.run_posted()
    assert ran == [1, 2]


def test_while_handshaking_the_childs_work_is_apart_from_the_rest():
    mailbox, ran = Mailbox(), []
    child, other = object(), object()
    with mailbox.handshaking(child):
        mailbox.post(lambda: ran.append("child"), child)
        mailbox.post(lambda: ran.append("other child"), other)
        mailbox.post(lambda: ran.append("request"))
        mailbox.run_handshake_posted()
        assert ran == ["child"]
        mailbox.post(lambda: ran.append("child, late"), child)
        os.read(mailbox.wake_fd, 4096)  # the handshake's turn read the rest's wake-ups too
    assert woken(mailbox)  # the rest is woken again for what waited
    mailbox.run_handshake_posted()
    assert ran == ["child"]  # after the handshake, nothing is routed apart
    mailbox.run_posted()
    assert ran == ["child", "other child", "request", "child, late"]


def test_serve_for_runs_work_as_it_comes_and_ends_when_stopping():
    mailbox, ran = Mailbox(), []
    threading.Timer(0.05, lambda: mailbox.post(lambda: ran.append("a"))).start()
    threading.Timer(0.15, mailbox.stop).start()
    started = time.monotonic()
    mailbox.serve_for(10)
    assert ran == ["a"] and time.monotonic() - started < 5
