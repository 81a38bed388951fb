"""The operator API service: /api/v1 over HTTP (argus.api), run by ``argus run api``. Not a bus stage: it reads
and changes the gallery and the event store on behalf of authenticated people and integrations."""
