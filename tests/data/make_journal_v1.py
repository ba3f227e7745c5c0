"""Write tests/data/journal-v1.sqlite with the schema-1 journal code (journal/db.py at 3574979).

Kept for the record of how the file was made: run it from a checkout of that commit, as
`python tests/data/make_journal_v1.py tests/data/journal-v1.sqlite`. Not collected by pytest.
"""

import sqlite3
import sys

sys.path.insert(0, "tests")
from support import submodule

db = submodule("journal.db")
ident = submodule("journal.identity").RequestIdentity
assert db.SCHEMA_VERSION == 1
path = sys.argv[1]
with db.Journal(path) as j:
    a = ident.text_to_image("a lighthouse in a storm, oil painting", None, seed=0, index=0)
    with j.claim(a) as c:
        e = c.start_create()
    j.record_task_id(e, "v1-task-done")
    urls = [f"http://127.0.0.1:1/files/v1-task-done/{i}.jpg" for i in range(2)]
    j.record_state("v1-task-done", db.State.SUCCEEDED, result_urls=urls)
    j.record_file("v1-task-done", 0, "/old/files/v1-task-done/0.jpg", "a" * 64, 1234, urls[0])
    j.record_file("v1-task-done", 1, "/old/files/v1-task-done/1.jpg", "b" * 64, 2345, urls[1])
    b = ident.text_to_image("a red fox in snow", "3:2", seed=7, index=1)
    with j.claim(b) as c:
        e = c.start_create()
    j.record_task_id(e, "v1-task-running")
    j.record_state("v1-task-running", db.State.RUNNING)
    d = ident.text_to_image("forbidden thing", None, seed=0, index=0)
    with j.claim(d) as c:
        e = c.start_create()
    j.record_task_id(e, "v1-task-failed")
    j.record_state("v1-task-failed", db.State.FAILED, error="content policy")
    u = ident.upscale("v1-task-done", seed=0, index=0)
    with j.claim(u) as c:
        e = c.start_create()
        c.mark_uncertain(e.id, "the answer was lost")
    j.record_loaded("v1-task-loaded")
raw = sqlite3.connect(path)
raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
raw.execute("VACUUM")
raw.close()
