-- Forced remediation across several SCCM sites (issues #15 and #20,
-- docs/architecture.md §9.2 and §10.1). A wave belongs to one site: the
-- forced collection is per site, so the waves of one site run one at a
-- time while other sites' run beside them. '' is the one site of
-- AUTOPATCH_SCCM_* (every row before this migration).
ALTER TABLE forced_waves ADD COLUMN site text NOT NULL DEFAULT '';
ALTER TABLE forced_waves DROP CONSTRAINT forced_waves_change_number_run_at_wave_key;
ALTER TABLE forced_waves ADD CONSTRAINT forced_waves_run_wave UNIQUE (change_number, run_at, site, wave);
