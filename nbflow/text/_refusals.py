"""What a refused call is told: which workflow holds what it asked for, and what to do."""

from __future__ import annotations

from nbflow.text._hints import hint

__all__ = ["deduplicated_message"]


def deduplicated_message(workflow_id: str, queue: str, deduplication_id: str, holder: str) -> str:
    """The message of an enqueue refused because ``holder`` holds its deduplication id.

    Args:
        workflow_id: The workflow that was not enqueued.
        queue: The queue.
        deduplication_id: The id.
        holder: The workflow ENQUEUED, DELAYED or PENDING on the queue with that id.

    Returns:
        The message, naming all four and the ways out.
    """
    return (
        f"Workflow {workflow_id!r} was not enqueued: workflow {holder!r} holds deduplication id "
        f"{deduplication_id!r} on queue {queue!r} until it ends. Wait for it or cancel it "
        f"({hint('cancel', holder)}), then enqueue again; or use another deduplication id."
    )
