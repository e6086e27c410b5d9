-- Tasks can be cancelled: a task's status and an item's status gain `cancelled`, and a task
-- counts its cancelled items (pending = total - completed - failed - cancelled).
ALTER TABLE tasks DROP CONSTRAINT tasks_status_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_status_check
    CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled'));
ALTER TABLE tasks ADD COLUMN cancelled_items BIGINT NOT NULL DEFAULT 0;

ALTER TABLE task_items DROP CONSTRAINT task_items_status_check;
ALTER TABLE task_items ADD CONSTRAINT task_items_status_check
    CHECK (status IN ('pending', 'succeeded', 'failed', 'cancelled'));
