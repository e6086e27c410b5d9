-- Data amounts are decimal (1 GB = 1,000 MB), as the contract says; the sort column of usage
-- reported in GB was written with 1,024. Recomputed from the reported amount; MB rows are exact.
UPDATE sims SET consumed_mb = consumed_mb * 1000.0 / 1024.0
WHERE consumed_mb IS NOT NULL AND consumed_data LIKE '%"unit":"GB"%';
