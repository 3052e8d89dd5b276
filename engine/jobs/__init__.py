"""Who trains where: the controller (queue, placement, status changes), executors, and the trainer command they run."""
