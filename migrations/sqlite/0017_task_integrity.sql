-- Task rows are authenticated: an HMAC-SHA256 under the task subkey of the database's
-- integrity key over a task's id, tenant, type, creation time, key version and canonical
-- parameters (the actor who queued it among them), and under the task-item subkey over an
-- item's task, position, line, SIM and input. Progress counts, status and leases are not
-- covered: they change as the work goes and decide nothing about whom the worker acts as or
-- what it does. NULL only for a task or item queued before this migration: such a task is
-- failed, never run (its parameters cannot be told from forged ones), and submitted again.
ALTER TABLE tasks ADD COLUMN mac BLOB;
ALTER TABLE task_items ADD COLUMN mac BLOB;
