"""The run folder, the record of every run: its protocol (status, lock, heartbeat, stop), names, checkpoint, read model, delete/rename."""
