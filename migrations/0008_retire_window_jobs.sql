-- Windows are opened and closed by every replica's window keeper (issue
-- #13); the River job kinds open_window and close_window no longer exist.
-- Jobs of those kinds left by an older release would fail forever as
-- unknown kinds: drop the ones not yet finished. The keeper acts on what the
-- deployments table says is due, so nothing they would have done is lost.
DELETE FROM river_job
WHERE kind IN ('open_window', 'close_window')
  AND state NOT IN ('completed', 'cancelled', 'discarded');
