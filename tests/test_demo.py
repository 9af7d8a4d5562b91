"""The web demo (app.py, text2sign.demo): what a generation writes, clear messages for bad input, the server, and
the page in a real browser.

The page and server tests need gradio (the `demo` extra); the browser test drives Debian's chromium through its
chromedriver with Selenium (tests/install_browser.sh installs both). Each skips with the reason where its tools are
missing, except in CI (the CI variable set): .ci/run installs them, so a missing one is a broken install, and a
skip would pass the run with the demo never tested.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from text2sign.demo import SignDemo, example_prompts, page_handler
from text2sign.models.pipeline import TextToSignPipeline
from text2sign.video_io import frames_grid, read_gif
from tiny_models import CAPTIONS, tiny_pipeline, tiny_signer_pipeline
from top_level_scripts import REPO, load_script

NUM_FRAMES, IMAGE_SIZE = 4, 8  # tiny_pipeline's PipelineConfig
PROMPT = CAPTIONS[0]  # "hello there"
INSTALL = "pip install -r requirements-dev.txt (gradio, selenium) and bash tests/install_browser.sh (chromium, chromedriver)"
SERVER_START_SECONDS = 300  # importing gradio and torch takes ~5 s on an idle 2-core CPU; minutes when other jobs starve it
BROWSER_WAIT_SECONDS = 60
# The flags that let headless chromium run as root on a closed network: without the background-networking ones it
# keeps trying to reach Google's hosts.
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1280,1000"]


def skip_or_fail_in_ci(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}, so the web demo tests cannot run; CI must install it: {INSTALL}")
    pytest.skip(f"{reason}: {INSTALL} to run it")


def test_a_missing_tool_fails_in_ci_and_skips_elsewhere(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must install"):
        skip_or_fail_in_ci("chromium is not installed")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="chromium is not installed"):
        skip_or_fail_in_ci("chromium is not installed")


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("demo") / "pipeline"
    tiny_pipeline().save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def demo(pipeline_dir, tmp_path_factory):
    return SignDemo(pipeline_dir, output_dir=tmp_path_factory.mktemp("demo_outputs"))


@pytest.fixture
def gradio():
    if importlib.util.find_spec("gradio") is None:
        skip_or_fail_in_ci("gradio is not installed")
    import gradio

    return gradio


# ---- the demo without a web page ---------------------------------------------------------------------------------
def test_generate_writes_mp4_gif_and_frame_strip_with_every_frame(demo):
    progress = []
    video = demo.generate(PROMPT, sampler="ddim", num_inference_steps=2, seed=0, progress=lambda done, total: progress.append((done, total)))
    assert video.frames.shape == (NUM_FRAMES, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert iio.imread(video.mp4, plugin="FFMPEG").shape == (NUM_FRAMES, IMAGE_SIZE, IMAGE_SIZE, 3)
    np.testing.assert_array_equal(read_gif(video.gif), video.frames)  # a GIF holds up to 256 colours exactly
    np.testing.assert_array_equal(np.array(Image.open(video.strip).convert("RGB")), frames_grid(video.frames))
    assert progress == [(1, 2), (2, 2)]  # the progress bar hears of every denoising step


def test_generate_samples_what_the_pipeline_samples_with_those_settings(demo, pipeline_dir):
    pipeline = TextToSignPipeline.from_pretrained(pipeline_dir)
    expected = pipeline([PROMPT], num_inference_steps=3, guidance_scale=2.5, scheduler="dpm", generator=torch.Generator().manual_seed(7), progress=False)[0]
    video = demo.generate(PROMPT, sampler="dpm", num_inference_steps=3, guidance_scale=2.5, seed=7)
    np.testing.assert_array_equal(video.frames, expected.numpy())
    other_seed = demo.generate(PROMPT, sampler="dpm", num_inference_steps=3, guidance_scale=2.5, seed=8)
    assert not np.array_equal(other_seed.frames, video.frames)


@pytest.mark.parametrize("prompt", ["", "  \n "])
def test_an_empty_prompt_is_refused_with_a_message(demo, prompt):
    with pytest.raises(ValueError, match="enter a prompt"):
        demo.generate(prompt, num_inference_steps=1)


def test_a_bad_checkpoint_is_refused_and_the_loaded_one_stays(demo, pipeline_dir, tmp_path):
    missing = tmp_path / "no_such_run"
    with pytest.raises(FileNotFoundError, match="no_such_run does not exist"):
        SignDemo(missing)
    with pytest.raises(FileNotFoundError, match="no_such_run does not exist"):
        demo.generate(PROMPT, checkpoint=missing, num_inference_steps=1)
    truncated = shutil.copytree(pipeline_dir, tmp_path / "truncated")
    weights = truncated / "unet" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated.* does not load"):
        demo.generate(PROMPT, checkpoint=truncated, num_inference_steps=1)
    assert demo.pipeline_dir == pipeline_dir.resolve()
    assert demo.generate(PROMPT, num_inference_steps=1).frames.shape == (NUM_FRAMES, IMAGE_SIZE, IMAGE_SIZE, 3)


def test_app_exits_with_one_line_on_a_bad_checkpoint(tmp_path, capsys):
    assert load_script("app.py").main(["--checkpoint", str(tmp_path / "no_such_run")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("app.py: error: checkpoint") and "no_such_run does not exist" in error and error.count("\n") == 1


def test_app_without_gradio_says_so_before_loading_any_checkpoint(tmp_path, capsys, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None if name == "gradio" else find_spec(name, *rest))
    assert load_script("app.py").main(["--checkpoint", str(tmp_path / "no_such_run")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("app.py: error:") and "needs gradio" in error and "no_such_run" not in error


def test_example_prompts_are_hello_and_the_bundled_captions():
    captions = [path.read_text(encoding="utf-8").strip() for path in sorted((REPO / "training_data").glob("*.txt"))]
    assert len(captions) == 4
    assert example_prompts(REPO / "training_data") == ["Hello", *captions]
    assert example_prompts(None) == ["Hello"]


def test_example_prompts_skip_captions_the_dataset_would_skip(tmp_path):
    (tmp_path / "a.txt").write_bytes("\ufeff  a caption \n".encode("utf-8"))
    (tmp_path / "b.txt").write_text("   ")
    (tmp_path / "c.txt").write_bytes(b"\xff\xfe not utf-8 \x80")
    assert example_prompts(tmp_path) == ["Hello", "a caption"]


# ---- the page's function, as gradio calls it --------------------------------------------------------------------
def test_page_returns_the_video_and_shows_bad_input_as_a_message(demo, pipeline_dir, gradio, tmp_path):
    generate = page_handler(demo)
    progress = []
    video, strip, downloads, status = generate(PROMPT, str(pipeline_dir), "ddim", 2, 4.0, 0, progress=lambda *args, **kwargs: progress.append(args[0]))
    assert iio.imread(video, plugin="FFMPEG").shape == (NUM_FRAMES, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert [Path(path).suffix for path in downloads] == [".gif", ".mp4"] and Path(strip).suffix == ".png"
    assert status.startswith(f"{NUM_FRAMES} frames of {IMAGE_SIZE}x{IMAGE_SIZE} px") and "ddim, 2 steps" in status
    assert progress == [(1, 2), (2, 2)]
    with pytest.raises(gradio.Error, match="enter a prompt"):
        generate("", str(pipeline_dir), "ddim", 2, 4.0, 0, progress=lambda *args, **kwargs: None)
    with pytest.raises(gradio.Error, match="no_such_run does not exist"):
        generate(PROMPT, str(tmp_path / "no_such_run"), "ddim", 2, 4.0, 0, progress=lambda *args, **kwargs: None)


def test_the_page_offers_a_trained_models_signers_and_passes_the_choice_on(tmp_path, gradio):
    from text2sign.demo import ANY_SIGNER_CHOICE, build_page

    pipeline = tiny_signer_pipeline()
    pipeline.save_pretrained(tmp_path / "pipeline")
    demo = SignDemo(tmp_path / "pipeline", output_dir=tmp_path / "out")
    assert "signers man-1, woman-1" in demo.describe()
    menus = [block for block in build_page(demo, [PROMPT]).blocks.values() if getattr(block, "elem_id", None) == "signer"]
    assert len(menus) == 1 and menus[0].visible and [choice[0] for choice in menus[0].choices] == [ANY_SIGNER_CHOICE, "man-1", "woman-1"]
    generate = page_handler(demo)
    frames = {signer: demo.generate(PROMPT, num_inference_steps=2, signer=signer).frames for signer in ("woman-1", "man-1", ANY_SIGNER_CHOICE)}
    assert not np.array_equal(frames["woman-1"], frames["man-1"])
    with pytest.raises(gradio.Error, match="unknown signer 'nobody'"):
        generate(PROMPT, str(tmp_path / "pipeline"), "ddim", 2, 4.0, 0, "nobody", progress=lambda *args, **kwargs: None)


# ---- the server, and the page in a browser -----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_get(url: str) -> bytes:
    assert url.startswith("http://127.0.0.1:"), f"the tests only talk to the local server, not {url}"
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        return response.read()


@pytest.fixture(scope="module")
def server(pipeline_dir, tmp_path_factory):
    """`python app.py --checkpoint DIR --port P` on 127.0.0.1; yields its URL once `/` answers."""
    if importlib.util.find_spec("gradio") is None:
        skip_or_fail_in_ci("gradio is not installed")
    logs = tmp_path_factory.mktemp("server")
    port = free_port()
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])),
                   "GRADIO_TEMP_DIR": str(logs / "gradio"), "GRADIO_ANALYTICS_ENABLED": "False"}
    log = open(logs / "app.log", "w")
    process = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--checkpoint", str(pipeline_dir), "--port", str(port), "--host", "127.0.0.1",
                                "--device", "cpu"], stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=logs)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + SERVER_START_SECONDS
    while True:
        if process.poll() is not None:
            log.close()
            pytest.fail(f"app.py exited with code {process.returncode}:\n{(logs / 'app.log').read_text()}")
        try:
            http_get(url)
            break
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                process.kill()
                log.close()
                pytest.fail(f"app.py did not answer on {url} within {SERVER_START_SECONDS} s:\n{(logs / 'app.log').read_text()}")
            time.sleep(0.25)
    yield url
    process.terminate()  # app.py shuts down like Ctrl-C on SIGTERM
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()


@pytest.mark.slow
def test_app_serves_the_page(server):
    assert b"text2sign" in http_get(server)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Debian chromium driven through its own chromedriver: never a browser or driver downloaded by a tool."""
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if importlib.util.find_spec("selenium") is None:
        skip_or_fail_in_ci("selenium is not installed")
    if chromium is None or chromedriver is None:
        skip_or_fail_in_ci("chromium or chromedriver is not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium_profile')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)  # an explicit driver: Selenium Manager never runs
    driver.set_page_load_timeout(BROWSER_WAIT_SECONDS)
    yield driver
    driver.quit()


@pytest.mark.slow
def test_browser_generates_a_playable_video_for_a_typed_prompt(browser, server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, BROWSER_WAIT_SECONDS)
    browser.get(server)
    prompt = wait.until(lambda driver: driver.find_element(By.CSS_SELECTOR, "#prompt textarea"))
    generate = browser.find_element(By.CSS_SELECTOR, "#generate")

    generate.click()  # nothing typed yet
    wait.until(lambda driver: "enter a prompt" in driver.find_element(By.TAG_NAME, "body").text, message="no message in the page for an empty prompt")

    prompt.send_keys(PROMPT)
    steps = browser.find_element(By.CSS_SELECTOR, "#steps input[type=number]")
    steps.clear()
    steps.send_keys("3")
    generate.click()
    video = wait.until(lambda driver: next((element for element in driver.find_elements(By.CSS_SELECTOR, "#video video") if element.get_attribute("src")), False),
                       message="no video element with a source appeared")
    # The browser itself decoded it: metadata with the frame size, and a frame to show (readyState >= HAVE_CURRENT_DATA).
    wait.until(lambda driver: driver.execute_script("const v = arguments[0]; return v.readyState >= 2 && v.videoWidth > 0 && !v.error;", video),
               message="the browser did not decode the video")
    width, height, duration = browser.execute_script("const v = arguments[0]; return [v.videoWidth, v.videoHeight, v.duration];", video)
    assert (width, height) == (IMAGE_SIZE, IMAGE_SIZE) and duration > 0

    played = tmp_path / "played.mp4"
    played.write_bytes(http_get(video.get_attribute("src")))
    assert iio.imread(played, plugin="FFMPEG").shape == (NUM_FRAMES, IMAGE_SIZE, IMAGE_SIZE, 3)
    links = [link.get_attribute("href") for link in browser.find_elements(By.CSS_SELECTOR, "#downloads a") if link.get_attribute("href")]
    downloads = {Path(urllib.parse.urlparse(link).path).suffix: link for link in links}
    assert set(downloads) == {".gif", ".mp4"}
    (tmp_path / "download.gif").write_bytes(http_get(downloads[".gif"]))
    assert read_gif(tmp_path / "download.gif").shape == (NUM_FRAMES, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert "3 steps" in browser.find_element(By.CSS_SELECTOR, "#status").text  # the steps typed reached the sampler
