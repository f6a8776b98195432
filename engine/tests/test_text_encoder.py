"""The umT5 text encoder: Wan key mapping, strict loading, prompt cleaning, tokenizing and trimming.

Numbers come from the tiny upstream fixture in ../shared/parity/t5 (parity README §4).
"""

import json

import pytest
import torch
from parity import default_fixture_root
from safetensors.torch import load_file
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from infinitetalk_engine.infinitetalk.loading import WeightsError
from infinitetalk_engine.infinitetalk.models.text_encoder import (
    T5EncoderArgs,
    clean_prompt,
    encode_prompts,
    encode_tokens,
    load_t5_encoder,
    load_tokenizer,
    tokenize,
    trim_to_mask,
)

T5 = default_fixture_root() / "t5"


@pytest.fixture(scope="module")
def args():
    return T5EncoderArgs.from_fixture_config(T5 / "config.json")


@pytest.fixture(scope="module")
def fixture():
    return load_file(T5 / "tensors.safetensors")


@pytest.fixture(scope="module")
def model(args):
    return load_t5_encoder(T5 / "weights.safetensors", args, dtype=torch.float32)


def wan_weights():
    return load_file(T5 / "weights.safetensors")


def test_preset_is_the_full_size_umt5_xxl_of_the_fixture_notes():
    full = json.loads((T5 / "config.json").read_text())["full_size_equivalent"]
    assert T5EncoderArgs.umt5_xxl() == T5EncoderArgs.from_wan_kwargs(full)


def test_shared_position_bias_is_rejected():
    config = json.loads((T5 / "config.json").read_text())["t5_encoder_kwargs"]
    with pytest.raises(ValueError, match="shared_pos"):
        T5EncoderArgs.from_wan_kwargs({**config, "shared_pos": True})


def test_swapping_the_gate_and_linear_branches_changes_the_output(args, fixture):
    # Given Wan weights with ffn.gate.0 and ffn.fc1 exchanged (the known wrong mapping)
    state = wan_weights()
    for key in [k for k in state if k.endswith("ffn.gate.0.weight")]:
        fc1 = key.replace("ffn.gate.0", "ffn.fc1")
        state[key], state[fc1] = state[fc1], state[key]
    # When encoding, Then the output is far from upstream's
    wrong = load_t5_encoder(state, args, dtype=torch.float32)
    error = (encode_tokens(wrong, fixture["ids"], fixture["mask"]) - fixture["encoder_out_full"]).abs().max()
    assert error > 1e-2


def test_a_pth_file_loads_memory_mapped_like_the_dict(tmp_path, args, model, fixture):
    path = tmp_path / "t5.pth"
    torch.save(wan_weights(), path)
    from_file = load_t5_encoder(path, args, dtype=torch.float32)
    ids, mask = fixture["ids"], fixture["mask"]
    assert torch.equal(encode_tokens(from_file, ids, mask), encode_tokens(model, ids, mask))


def test_token_embedding_is_one_tied_tensor(model):
    assert model.encoder.embed_tokens.weight is model.shared.weight


def test_bf16_loading_gives_bf16_weights(args):
    model = load_t5_encoder(wan_weights(), args, dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert not any(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s.pop("norm.weight"), "missing 1"),
        (lambda s: s.__setitem__("blocks.0.extra.weight", torch.zeros(1)), "unexpected 1"),
        (lambda s: s.__setitem__("norm.weight", torch.zeros(3)), "encoder.final_layer_norm.weight has shape"),
    ],
)
def test_mismatching_weights_fail_naming_the_file(tmp_path, args, change, message):
    state = wan_weights()
    change(state)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError) as error:
        load_t5_encoder(path, args, dtype=torch.float32)
    assert str(path) in str(error.value) and message in str(error.value)


def test_a_missing_file_fails_naming_it(tmp_path, args):
    with pytest.raises(WeightsError, match="missing"):
        load_t5_encoder(tmp_path / "nope.pth", args)


def test_rows_are_trimmed_to_their_mask_length(model, fixture):
    out = encode_tokens(model, fixture["ids"], fixture["mask"])
    contexts = trim_to_mask(out, fixture["mask"])
    assert [c.shape[0] for c in contexts] == fixture["mask"].sum(dim=1).tolist()
    assert torch.equal(contexts[0], out[0, : contexts[0].shape[0]])


def test_prompt_cleaning_fixes_html_and_whitespace():
    assert clean_prompt("  A   woman\n\tspeaks &amp;amp; smiles  ") == "A woman speaks & smiles"


@pytest.fixture(scope="module")
def tokenizer_folder(tmp_path_factory):
    """A word-level tokenizer with umT5's conventions (pad 0, EOS 1 appended), saved as an HF folder."""
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, "a": 3, "person": 4, "is": 5, "talking": 6, "&": 7}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    folder = tmp_path_factory.mktemp("tokenizer")
    PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    ).save_pretrained(folder)
    return folder


def test_tokenize_pads_truncates_and_masks(tokenizer_folder):
    tokenizer = load_tokenizer(tokenizer_folder)
    ids, mask = tokenize(tokenizer, [" a  person &amp; is\ntalking ", "talking " * 20], text_len=8)
    assert ids.tolist()[0] == [3, 4, 7, 5, 6, 1, 0, 0]
    assert mask.tolist()[0] == [1, 1, 1, 1, 1, 1, 0, 0]
    assert mask[1].sum() == 8 and ids.shape == (2, 8)


def test_encode_prompts_returns_one_trimmed_context_per_prompt(tokenizer_folder, model, args):
    tokenizer = load_tokenizer(tokenizer_folder)
    contexts = encode_prompts(model, tokenizer, ["a person is talking", "talking"], text_len=args.text_len)
    assert [tuple(c.shape) for c in contexts] == [(5, args.dim), (2, args.dim)]


def test_a_missing_tokenizer_folder_fails(tmp_path):
    with pytest.raises(WeightsError, match="tokenizer folder missing"):
        load_tokenizer(tmp_path / "google" / "umt5-xxl")


def test_a_pre_zip_format_pth_file_still_loads(tmp_path, args, model, fixture):
    path = tmp_path / "legacy.pth"
    torch.save(wan_weights(), path, _use_new_zipfile_serialization=False)  # cannot be memory-mapped
    legacy = load_t5_encoder(path, args, dtype=torch.float32)
    ids, mask = fixture["ids"], fixture["mask"]
    assert torch.equal(encode_tokens(legacy, ids, mask), encode_tokens(model, ids, mask))


def test_the_full_size_model_is_built_without_allocating_its_weights():
    import resource

    from transformers import UMT5EncoderModel

    from infinitetalk_engine.infinitetalk.loading import parameters_on_meta

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with parameters_on_meta():
        model = UMT5EncoderModel(T5EncoderArgs(num_layers=2).to_hf())  # 1B-entry embedding + two XXL layers
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert {p.device.type for p in model.parameters()} == {"meta"}
    assert grown_mb < 200, f"building on meta grew the peak RSS by {grown_mb:.0f} MB"
