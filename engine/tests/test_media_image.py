"""media/image.py: images fit the model's resolution buckets exactly as upstream does it."""

import json

import numpy as np
import pytest
from engine_process import SHARED, error_code
from PIL import Image
from safetensors.numpy import load_file

from infinitetalk_engine.media.image import (
    BUCKETS,
    choose_bucket,
    fit_to_bucket,
    load_image,
    plan_resize_crop,
    resize_and_crop,
)

SAMPLER_FIXTURES = SHARED / "parity" / "sampler"
UPSTREAM_BUCKETS = json.loads((SAMPLER_FIXTURES / "meta.json").read_text())["buckets"]
TIER = {"infinitetalk-480": "480p", "infinitetalk-720": "720p"}


@pytest.mark.parametrize("resolution, table", [("480p", "table_480"), ("720p", "table_720")])
def test_bucket_tables_equal_upstream_in_order(resolution, table):
    upstream = [(key, tuple(size)) for key, (size, _) in UPSTREAM_BUCKETS[table].items()]
    assert list(BUCKETS[resolution].items()) == upstream


@pytest.mark.parametrize(
    "case",
    UPSTREAM_BUCKETS["cases"],
    ids=[f"{c['input_w']}x{c['input_h']}-{c['tier']}" for c in UPSTREAM_BUCKETS["cases"]],
)
def test_bucket_choice_resize_and_crop_match_upstream(case):
    bucket = choose_bucket(case["input_w"], case["input_h"], TIER[case["tier"]])
    assert (bucket.key, bucket.height, bucket.width) == (case["bucket_key"], case["target_h"], case["target_w"])
    plan = plan_resize_crop(case["input_w"], case["input_h"], bucket.height, bucket.width)
    assert (plan.resized_h, plan.resized_w, plan.top, plan.left) == (
        case["resized_h"],
        case["resized_w"],
        case["crop_top"],
        case["crop_left"],
    )


def test_resize_and_crop_pixels_match_upstream():
    fixture = load_file(str(SAMPLER_FIXTURES / "tensors.safetensors"))
    source = fixture["resize_crop_example_in_hwc_uint8"].astype(np.uint8)  # (H, W, 3)
    expected = fixture["resize_crop_example_out_1c1hw"]  # (1, 3, 1, H, W)
    out = resize_and_crop(Image.fromarray(source), expected.shape[3], expected.shape[4])
    np.testing.assert_array_equal(out.transpose(2, 0, 1)[None, :, None].astype(np.float32), expected)


@pytest.mark.parametrize("extension", ["png", "jpg", "webp"])
def test_png_jpeg_and_webp_load_as_rgb_and_fit_the_square_bucket(extension, image_files):
    image = load_image(str(image_files[extension]))
    assert image.mode == "RGB" and image.size == (512, 512)
    pixels, bucket = fit_to_bucket(image, "480p")
    assert pixels.shape == (640, 640, 3) and pixels.dtype == np.uint8 and bucket.key == "1.00"


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (200, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    image.save(path, "JPEG", exif=exif)
    assert load_image(str(path)).size == (20, 40)


@pytest.mark.parametrize("name", ["noise.png", "truncated.png", "text.jpg", "noise.wav"])
def test_corrupt_images_are_bad_image(name, corrupt_files):
    assert error_code(load_image, str(corrupt_files[name])) == "bad_image"


def test_images_over_the_pixel_limit_are_refused(face_png):
    assert error_code(load_image, str(face_png), max_pixels=100 * 100, match="pixels") == "bad_image"


def test_unknown_resolution_is_bad_params():
    assert error_code(choose_bucket, 100, 100, "1080p") == "bad_params"
