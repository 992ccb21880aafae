"""The baseline: a bare FastAPI endpoint that reads the body and returns 200, served exactly like
the pipeline (uvicorn + httptools on uvloop, one process)."""

from __future__ import annotations

import argparse
import asyncio

from data_pipeline.devtools.serving import start_server
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/ping")
async def ping(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"status": "accepted"})


async def serve(port: int) -> None:
    await start_server(app, "127.0.0.1", port, lifespan="off")
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    import uvloop

    uvloop.run(serve(parser.parse_args().port))
