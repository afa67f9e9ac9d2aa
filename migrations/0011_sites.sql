-- Several SCCM sites in one estate (issue #20, docs/architecture.md §10.1).

-- The site a deployment was created at, copied from its schedule when the
-- plan inserts it and never changed: it is opened, closed, polled and
-- deleted there even if its schedule later moves to another site or is
-- retired. '' is the one site of AUTOPATCH_SCCM_* (every row before this
-- migration).
ALTER TABLE deployments ADD COLUMN site text NOT NULL DEFAULT '';
