"Behaviour behind the tokenizer's and the world's input checks (issue 8): what still works, and the cache rebuild."
import warnings

import numpy as np
import pytest
import torch

from vlnotes import text as T
from vlnotes.data import world as W


@pytest.fixture(scope="module")
def tok():
    return T.Tokenizer.train(W.caption_corpus(200), vocab_size=300)


def test_corrupt_world_tokenizer_cache_is_rebuilt(monkeypatch, tmp_path):
    monkeypatch.setenv("VLNOTES_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(T, "_WORLD_TOKENIZERS", {})
    first = T.world_tokenizer(vocab_size=300, corpus_size=300)
    [cached] = list(tmp_path.rglob("*.json"))
    cached.write_text(cached.read_text()[:500])                   # truncated, as by a crash mid-write
    T._WORLD_TOKENIZERS.clear()
    with pytest.warns(RuntimeWarning, match="corrupt, rebuilding"):
        again = T.world_tokenizer(vocab_size=300, corpus_size=300)
    assert again.to_str() == first.to_str()
    assert T.Tokenizer.from_file(cached).to_str() == first.to_str()   # the cache file was rewritten
    with warnings.catch_warnings():
        warnings.simplefilter("error")                             # a sound cache loads without a warning
        T._WORLD_TOKENIZERS.clear()
        T.world_tokenizer(vocab_size=300, corpus_size=300)


def test_corrupt_tokenizer_in_a_data_folder_still_raises_with_its_path(tmp_path):
    bad = tmp_path / "data" / "tokenizer.json"
    bad.parent.mkdir(); bad.write_text("{ not json")
    with pytest.raises(ValueError, match=str(bad)):
        T.Tokenizer.from_file(bad)


def test_save_replaces_an_existing_file_whole_and_leaves_no_temp_files(tok, tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text("old")
    assert tok.save(path) == path and T.Tokenizer.from_file(path).to_str() == tok.to_str()
    (tmp_path / "a-file").write_text("x")                              # a file where the folder should be
    with pytest.raises(PermissionError, match="a-file"):
        tok.save(tmp_path / "a-file" / "tokenizer.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "tokenizer.json"]


def test_valid_unicode_still_round_trips(tok):
    text = "a café ☕ and a naïve square"
    assert tok.decode(tok.encode(text)["input_ids"][0]) == tok.normalize(text)


def test_decode_batches(tok):
    enc = tok.encode(["a red circle", "a blue square"])
    assert tok.decode(enc["input_ids"]) == tok.decode(enc["input_ids"].tolist()) == tok.decode(enc["input_ids"].numpy())
    assert tok.decode(torch.zeros(0, 3, dtype=torch.long)) == []       # an empty batch: no texts
    assert tok.decode([]) == "" and tok.decode([[]]) == [""]            # no ids: the empty text


def test_mlm_mask_edges():
    assert not T.mlm_mask(torch.full((2, 3), -1), 1.0).any()           # only specials: nothing to mask
    last_word = torch.tensor([[-1, 0, 1, 2, -1]])                      # word ids up to L - 1 are fine
    assert T.mlm_mask(last_word, 1.0).tolist() == [[False, True, True, True, False]]
    assert T.mlm_mask(last_word.int(), 1.0, whole_word=False).sum() == 3     # any integer dtype


def test_world_paths_agree_with_the_checked_public_functions():
    w = W.ShapesWorld("all", seed=3, length=8, image_size=16, max_objects=4)
    scenes = [W.sample_scene(W.sample_rng(3, "all", i, "scene"), W.split_pairs("all"), 1, 4) for i in range(8)]
    assert scenes == [w.scene(i) for i in range(8)]
    batch = w.__getitems__(range(8))
    assert torch.equal(W.render_scenes(scenes, 16)["images"], torch.stack([s["image"] for s in batch]))
    assert [W.scene_captions(s["objects"], W.sample_rng(3, "all", i, "text")) for i, s in enumerate(scenes)] == \
        [w._text(i, s["objects"])[0] for i, s in enumerate(scenes)]
    assert len(w.__getitems__(np.arange(3))) == 3 and w.__getitems__([]) == []


def test_prompts_still_take_synonyms_free_names_and_literal_braces():
    w = W.ShapesWorld(length=2, image_size=16)
    assert w.prompts(["disc", "orange thing"], ["a {}.", "{{{}}}"]) == [["a disc.", "{disc}"],
                                                                       ["an orange thing.", "{orange thing}"]]
    assert W.noun_phrase(w.scene(0)["objects"][0], p_syn=0.0)               # no generator needed without synonyms
