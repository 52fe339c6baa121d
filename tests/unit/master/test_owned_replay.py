"""Who may replay what: any key holder may replay any failed task by its id, but the replay
is a task of the caller's own outbox (its new ids under that outbox's public name, which is
all the master keeps of the claim)."""

from __future__ import annotations

import pytest
from state_helpers import join, task

from taskq.master.broker import Broker
from taskq.master.owned import Owned
from taskq.master.state import BrokerState
from taskq.protocol import names
from taskq.protocol.messages import ResultMsg, Status
from taskq.protocol.names import NotYours

CLAIM = names.new_client_claim()


def broker_with_a_failure() -> Broker:
    state = BrokerState(lost_after=5, max_lost=3, max_payload=1 << 20)
    join(state, "w")
    state.submit([task("box-t0")], 0.0)
    state.lease("w", 1, 0.0)
    state.complete("w", [ResultMsg("box-t0", Status.CRASHED, None, "killed")], 0.0)
    return Broker(state)


def test_a_replay_is_a_task_of_the_callers_outbox() -> None:
    broker = broker_with_a_failure()
    replay = Owned(broker).calls["replay"]
    new_id = names.task_prefix(CLAIM) + "1"

    [out] = replay(["box-t0"], [new_id], CLAIM, True)

    assert (out.new_id, out.error) == (new_id, "")
    rec = broker._state.tasks[new_id]
    assert rec.msg.outbox == names.outbox_name(CLAIM) != CLAIM  # the claim is not kept
    assert out.task is not None and out.task.outbox == rec.msg.outbox


@pytest.mark.parametrize("new_ids", [["box-t9"], [names.task_prefix("client-other") + "1"],
                                     "not a list", [7]])
def test_new_ids_outside_the_callers_outbox_are_refused(new_ids: object) -> None:
    broker = broker_with_a_failure()
    with pytest.raises(NotYours):
        Owned(broker).calls["replay"](["box-t0"], new_ids, CLAIM, False)
    assert list(broker._state.tasks) == []  # nothing made
    assert broker._state.dead.letters["box-t0"].replayed_as == []
