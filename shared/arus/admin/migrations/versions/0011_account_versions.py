"""Account versions (issue 18, SPEC §3.5): optimistic concurrency for clients that read, decide
and write.

An account's `version` is its count of posted postings (balances.posting_count, 0 at creation),
so accounts need no new column; each posting records the version it made in
`postings.account_version`, filled here for the postings already written (the n-th posting of
an account, in the order they were committed, made version n). A posting line may carry
`expected_version` (`arus_line` gains it, so the row type and the functions over it are made
again); the judgement refuses a line whose account is at another version with 409
`version_conflict`.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

from arus.admin import grants
from arus.ledger import engine_sql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

FILL_VERSIONS = """
ALTER TABLE postings ADD COLUMN account_version bigint;
ALTER TABLE postings DISABLE TRIGGER postings_append_only;
UPDATE postings p SET account_version = v.version
FROM (SELECT id, row_number() OVER (PARTITION BY account_id ORDER BY created_at, id) AS version
      FROM postings) v
WHERE v.id = p.id;
ALTER TABLE postings ENABLE TRIGGER postings_append_only;
ALTER TABLE postings ALTER COLUMN account_version SET NOT NULL;
"""


def upgrade() -> None:
    op.execute(FILL_VERSIONS)
    # The row type of a line changes shape: the functions that take it go with it and come back
    # with the engine (its file creates the type when it is missing).
    op.execute("DROP TYPE arus_line CASCADE")
    engine_sql.apply(op.execute)
    grants.apply(op.execute)


def downgrade() -> None:
    raise NotImplementedError("the books move forward only")
