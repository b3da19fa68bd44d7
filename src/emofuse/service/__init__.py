"""``emofuse serve``: a REST service and a web page around one warm model (docs/service.md).

- `emofuse.service.app`: the FastAPI application (`create_app`, `ServiceSettings`);
- `emofuse.service.engine`: the loaded model, the header duration check, prediction → JSON;
- `emofuse.service.gate`: bounded concurrency (workers + a queue, 429 when full), work off the event loop;
- `emofuse.service.uploads`: streamed multipart parsing into a per-request folder, with limits;
- `emofuse.service.sniff`: the upload's type from its bytes;
- `emofuse.service.errors`: the JSON error model;
- `emofuse.service.loadtest`: the load and latency measurement (``python -m emofuse.service.loadtest``);
- ``web/``: the page (HTML, JS, CSS; no CDN).

FastAPI is imported only here, never by ``emofuse --help``.
"""
