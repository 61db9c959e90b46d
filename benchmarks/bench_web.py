"""Load test of the web app on loopback: 20 concurrent prediction requests to a real `masksmith serve` while a
training job runs in it, beside the same predictions made through the library (what `masksmith predict`
runs: read the photo, predict, write mask, colour mask, overlay and cut-outs) in this process, in the same run
and under the same training load. Claims ratios: web latency over library latency.

    python benchmarks/bench_web.py            # 640x480 photos, a model trained for 1 epoch at 128 px
    python benchmarks/bench_web.py --short    # smaller: a quick check that it all works (not written)

Only 127.0.0.1 is contacted; every loop is bounded in count and time."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import REPO, cpu_flags, machine, write_section  # noqa: E402

HOST = "127.0.0.1"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def call(port: int, method: str, path: str, body: bytes | None = None, json_body=None, timeout: float = 600):
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    headers = {"Origin": f"http://{HOST}:{port}"}
    if json_body is not None:
        body, headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def run_state(port: int, run_id: int) -> str:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    conn.request("GET", f"/runs/{run_id}/events")
    response = conn.getresponse()
    line = b""
    while not line.startswith(b"data: "):
        line = response.fp.readline()
    conn.close()
    return json.loads(line[6:])["state"], json.loads(line[6:])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="small photos and model; nothing written")
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    import torch

    from masksmith.data.synthetic import make_sample_dataset

    threads = torch.get_num_threads()
    load_before = os.getloadavg()[0]
    print(f"machine: {machine()}\ncpu flags: {cpu_flags()}\ntorch threads: {threads} (server, trainer and this "
          "process alike: torch's default on this machine)")
    photo_size = (320, 240) if args.short else (640, 480)
    train_size = 64 if args.short else 128
    tmp = Path(tempfile.mkdtemp(prefix="masksmith-bench-web-"))
    data = make_sample_dataset(tmp / "cars", n_images=20 if args.short else 60)
    photos_dir = make_sample_dataset(tmp / "photos", n_images=args.requests, size=photo_size, seed=7)
    photos = sorted(photos_dir.rglob("*.jpg"))[: args.requests]
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    log = (tmp / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "masksmith.cli", "serve", "--data-dir", str(tmp / "web"),
                               "--port", str(port), "--no-sample"], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait(lambda: _up(port), 120, "the server")
        status, body = call(port, "POST", "/api/datasets/folder", json_body={"path": str(data), "name": "cars"})
        assert status == 200, body
        ds = json.loads(body)["id"]
        t0 = time.monotonic()
        status, body = call(port, "POST", "/api/runs", json_body={"dataset": ds, "epochs": 1, "size": train_size})
        model_run = json.loads(body)["id"]
        wait(lambda: run_state(port, model_run)[0] == "finished", 900, "the model to predict with")
        print(f"model trained through the app in {time.monotonic() - t0:.0f} s")
        (model,) = (tmp / "web" / "runs").glob("*/model.masksmith")  # the only run so far
        status, body = call(port, "POST", "/api/runs", json_body={"dataset": ds, "minutes": 30, "size": train_size})
        busy_run = json.loads(body)["id"]
        wait(lambda: run_state(port, busy_run)[1]["epochs"], 600, "the background training's first epoch")
        print("a training job is running in the app; measuring")
        library, web_one = interleaved_latencies(model, port, model_run, photos, tmp / "library-out")
        web_many, wall = concurrent_latencies(port, model_run, photos)
        still = run_state(port, busy_run)[0]
        call(port, "POST", f"/api/runs/{busy_run}/stop")
        wait(lambda: run_state(port, busy_run)[0] != "stopping", 300, "the background training to stop")
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    assert still == "running", f"the background training was {still} at the end of the measurement"
    load = f"load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (2 cores)"
    print(load)
    ok = sum(1 for status, _ in web_many if status == 200)
    many = [t for _, t in web_many]
    med_lib, p95_lib = statistics.median(library), percentile(library, 0.95)
    med_one, p95_one = statistics.median(web_one), percentile(web_one, 0.95)
    med_many, p95_many = statistics.median(many), percentile(many, 0.95)
    rows = [
        ("library, one photo at a time (`masksmith predict`'s calls)", med_lib, p95_lib, 1.0, 1.0),
        ("web, one request at a time (alternating with the library)", med_one, p95_one, med_one / med_lib,
         p95_one / p95_lib),
        (f"web, {len(photos)} requests at once", med_many, p95_many, med_many / med_lib, p95_many / p95_lib),
    ]
    table = ["| how | median (s) | p95 (s) | median / library | p95 / library |", "|---|---:|---:|---:|---:|"]
    table += [f"| {h} | {m:.3f} | {p:.3f} | {rm:.2f} | {rp:.2f} |" for h, m, p, rm, rp in rows]
    throughput = len(photos) / wall
    serial = len(photos) / sum(library)
    text = "\n".join(table)
    print(text)
    print(f"{ok}/{len(photos)} concurrent requests succeeded; {throughput:.2f} photos/s concurrently vs "
          f"{serial:.2f} photos/s one at a time in the library ({throughput / serial:.2f}x)")
    body = (f"{len(photos)} photos of {photo_size[0]}x{photo_size[1]} (the sample generator, seed 7), a U-Net "
            f"(tf_efficientnet_lite0) trained 1 epoch at {train_size} px through the app, while a second "
            f"training runs in the app (it was still training when the measurement ended). torch threads: "
            f"{threads} in each process; CPU flags: {cpu_flags()}; {load}. Each prediction reads the photo, "
            "predicts and writes the mask, colour mask, overlay and cut-outs, in the library as in the web route "
            "(which also streams the upload and answers JSON).\n\n" + text +
            f"\n\n{ok}/{len(photos)} concurrent requests succeeded. The app predicts one photo at a time per model "
            "(a lock around the network: the two cores are already shared with the training), so 20 requests at "
            "once queue: their median and p95 are mostly waiting, and their throughput is "
            f"{throughput:.2f} photos/s against {serial:.2f} one at a time in the library "
            f"({throughput / serial:.2f}x).")
    if args.short:
        print("(--short: docs/benchmarks.md not written)")
    else:
        write_section("web", "Web app: predictions under load while training", body)


def _up(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://{HOST}:{port}/api/health", timeout=2)
        return True
    except OSError:
        return False


def interleaved_latencies(model: Path, port: int, run_id: int, photos: list[Path], out: Path
                          ) -> tuple[list[float], list[float]]:
    """Each photo through the library, then through the app, one at a time, alternating, so that both see
    the same load (the training beside them, and whatever else the machine runs); one untimed warm-up each."""
    from masksmith.apps.photo import predict_photo, write_photo_results
    from masksmith.core.images import read_image
    from masksmith.core.outputs import OutputFolder
    from masksmith.infer import open_predictor

    predictor = open_predictor(model)
    folder = OutputFolder(out)

    def library(k: int, photo: Path) -> float:
        t = time.perf_counter()
        image = read_image(photo)
        prediction = predict_photo(predictor, image, min_pixels=max(16, image.shape[0] * image.shape[1] // 500))
        write_photo_results(image, prediction, folder, stem=f"p{k}")
        return time.perf_counter() - t

    library(-1, photos[0])
    web_latency(port, run_id, photos[0])
    lib, web = [], []
    for k, photo in enumerate(photos):
        lib.append(library(k, photo))
        web.append(web_latency(port, run_id, photo))
    return lib, web


def web_latency(port: int, run_id: int, photo: Path) -> float:
    t = time.perf_counter()
    status, body = call(port, "POST", f"/api/models/{run_id}/try?filename={photo.name}", body=photo.read_bytes())
    assert status == 200, body
    return time.perf_counter() - t


def concurrent_latencies(port: int, run_id: int, photos: list[Path]) -> tuple[list[tuple[int, float]], float]:
    results: list[tuple[int, float]] = [(0, 0.0)] * len(photos)
    start = threading.Barrier(len(photos))

    def one(k: int) -> None:
        data = photos[k].read_bytes()
        start.wait()
        t = time.perf_counter()
        try:
            status, _ = call(port, "POST", f"/api/models/{run_id}/try?filename={photos[k].name}", body=data)
        except OSError:
            status = -1
        results[k] = (status, time.perf_counter() - t)

    workers = [threading.Thread(target=one, args=(k,)) for k in range(len(photos))]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=900)
    return results, time.perf_counter() - t0


if __name__ == "__main__":
    main()
