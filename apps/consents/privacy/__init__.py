"""Privacy requests: export, erase and suppress one person (services, tasks, the export
archive, suppression at ingest, and the hooks the apps above consents register)."""
