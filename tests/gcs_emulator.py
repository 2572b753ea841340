"""A local Google Cloud Storage emulator (gcp-storage-emulator) for tests, on 127.0.0.1.

`running(bucket)` starts it in a child process on a free port, waits until it answers, yields the
environment that points every GCS client memjax uses at it, and stops it. Run as a script it is the
child: the emulator, with two gaps to the real GCS JSON API closed for tensorstore's gcs driver
(Orbax's array data): downloads carry the object's generation in `x-goog-generation` (tensorstore
refuses a read without it), and listings honour `startOffset`/`endOffset` (tensorstore lists key
ranges with them).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request


def environment(url: str) -> dict[str, str]:
  """Variables that send gcsfs, tensorstore and google-auth to the emulator at `url`, nowhere else."""
  return {
      "STORAGE_EMULATOR_HOST": url,  # gcsfs (and google-cloud-storage)
      "FSSPEC_GCS_TOKEN": "anon",  # gcsfs: no credential lookup
      "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",  # gcsfs: no gRPC bucket-layout lookup
      "NO_GCE_CHECK": "true",  # google-auth and gcsfs: never probe a metadata server
      "TENSORSTORE_GCS_HTTP_URL": url,  # tensorstore (Orbax's array data)
      "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator",  # tensorstore: a fixed token, no credential lookup
      "GOOGLE_CLOUD_PROJECT": "test",
  }


def _free_port() -> int:
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    return probe.getsockname()[1]


@contextlib.contextmanager
def running(bucket: str, log_path: str):
  port = _free_port()
  url = f"http://127.0.0.1:{port}"
  with open(log_path, "w") as log:
    process = subprocess.Popen([sys.executable, __file__, str(port), bucket], stdout=log, stderr=log)
  try:
    deadline = time.monotonic() + 60
    while True:
      try:
        urllib.request.urlopen(f"{url}/storage/v1/b/{bucket}", timeout=2).read()
        break
      except OSError:
        if process.poll() is not None or time.monotonic() > deadline:
          raise RuntimeError(f"the GCS emulator did not start; see {log_path}") from None
        time.sleep(0.1)
    yield environment(url)
  finally:
    process.terminate()
    try:
      process.wait(timeout=10)
    except subprocess.TimeoutExpired:
      process.kill()
      process.wait()


def _ls_with_offsets(ls):
  def handler(request, response, storage, *args, **kwargs):
    start = (request.query.get("startOffset") or [None])[0]
    end = (request.query.get("endOffset") or [None])[0]
    json = response.json

    def in_range(obj):
      if "items" in obj:
        obj["items"] = [item for item in obj["items"] if (start is None or item["name"] >= start)
                        and (end is None or item["name"] < end)]
      json(obj)

    response.json = in_range
    return ls(request, response, storage, *args, **kwargs)
  return handler


def _download_with_generation(download):
  def handler(request, response, storage, *args, **kwargs):
    download(request, response, storage, *args, **kwargs)
    if response.status.value == 200 or response.status.value == 206:
      obj = storage.get_file_obj(request.params["bucket_name"], request.params["object_id"])
      response["x-goog-generation"] = str(obj["generation"])
      response["x-goog-metageneration"] = str(obj.get("metageneration", 1))
  return handler


def _serve(port: int, bucket: str) -> None:
  from gcp_storage_emulator import server
  from gcp_storage_emulator.handlers import objects

  download = _download_with_generation(objects.download)
  patched = {objects.ls: _ls_with_offsets(objects.ls), objects.download: download}
  objects.download = download  # objects.get serves alt=media through it
  server.HANDLERS = tuple((route, {method: patched.get(handler, handler)
                                   for method, handler in handlers.items()})
                          for route, handlers in server.HANDLERS)
  server.create_server("127.0.0.1", port, in_memory=True, default_bucket=bucket).run()


if __name__ == "__main__":
  _serve(int(sys.argv[1]), sys.argv[2])
