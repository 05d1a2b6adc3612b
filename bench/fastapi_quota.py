# The stack our users are leaving, for `npm run bench`: FastAPI answering the same quota JSON after a
# trivial API-key check (a SHA-256 of the header looked up in a dict), one uvicorn worker.
# Started by bench/run.ts with Debian's python3-fastapi and python3-uvicorn when they are installed.
import hashlib
import json
import os

from fastapi import FastAPI, Header, HTTPException

app = FastAPI()
KEYS = {hashlib.sha256(os.environ["BENCH_FASTAPI_KEY"].encode()).hexdigest(): "bench"}
BODY = json.loads(os.environ["BENCH_FASTAPI_BODY"])


@app.get("/quota")
async def quota(x_api_key: str = Header(default="")):
    if hashlib.sha256(x_api_key.encode()).hexdigest() not in KEYS:
        raise HTTPException(status_code=401, detail="Invalid or inactive API key")
    return BODY
