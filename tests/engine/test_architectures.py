"""The LSTM, the GRU and the Transformer: shapes, causality, padding, the fused head through them, checkpoints, stacks."""

from __future__ import annotations

import json

import pytest
import torch

from engine.cli.main import main
from engine.config.models import ModelConfig
from engine.errors import UserError
from engine.generate import Strategy, generate
from engine.lm.model import LanguageModel
from engine.lm.sizes import parameter_count, state_count
from engine.objective.head import head_loss_and_metrics
from engine.objective.metrics import Outputs
from engine.runs.checkpoint import load_run
from engine.training.events import RunFinished, RunStarted
from engine.training.stacked import StackedTrainer
from engine.training.trainer import Trainer
from tests.conftest import tiny_config
from tests.engine.test_head import RELATIVE, objective_for
from tests.engine.test_stacked import assert_same_run, of_member, solo_twin, sweep

VOCAB, BATCH, STEPS = 40, 3, 9
ARCHS = ["lstm", "gru", "transformer"]
SHAPES = {"embedding_dim": 16, "hidden_size": 24, "num_layers": 2, "heads": 4, "context": 16, "dropout": 0.1}


def model_for(arch: str, **overrides) -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(VOCAB, ModelConfig(arch=arch, **{**SHAPES, **overrides})).eval()


def tokens(seed: int = 1, batch: int = BATCH, steps: int = STEPS) -> torch.Tensor:
    return torch.randint(1, VOCAB, (batch, steps), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("tied", ["untied", "tied"])
@pytest.mark.parametrize("arch", ARCHS)
def test_forward_shapes_and_parameter_count(arch, tied):
    sizes = {"hidden_size": SHAPES["embedding_dim"]} if tied == "tied" and arch != "transformer" else {}
    model = model_for(arch, output_embedding=tied, **sizes)
    inputs = tokens()
    scored = torch.zeros(BATCH, STEPS, dtype=torch.bool)
    scored[0, :4], scored[2, 7] = True, True
    assert model(inputs).shape == (BATCH, STEPS, VOCAB)
    assert model(inputs, last_only=True).shape == (BATCH, VOCAB)
    assert model(inputs, scored=scored).shape == (5, VOCAB)
    assert model.features(inputs, scored=scored).shape == (5, model.config.feature_size)
    assert sum(p.numel() for p in model.parameters()) == parameter_count(VOCAB, model.config)
    # the tensor file's bound: a tied output weight is in the state (and the file) under both names
    assert sum(t.numel() for t in model.state_dict().values()) == state_count(VOCAB, model.config)
    assert (model.output.weight is model.embedding.weight) == (tied == "tied")
    assert hasattr(model, arch)  # the checkpoint's tensor names say the architecture


@pytest.mark.parametrize("arch", ARCHS)
def test_no_position_sees_the_future(arch):
    """Changing the token at position 5 leaves every output before it unchanged and changes the ones from it on."""
    model = model_for(arch)
    inputs = tokens()
    changed = inputs.clone()
    changed[:, 5] = (changed[:, 5] % (VOCAB - 1)) + 1
    with torch.no_grad():
        before, after = model(inputs), model(changed)
    torch.testing.assert_close(after[:, :5], before[:, :5], rtol=0, atol=0)
    assert not torch.allclose(after[:, 5:], before[:, 5:])


def test_the_transformer_reads_a_left_padded_prefix_as_the_whole_document():
    """Prefix batching pads on the left: positions count from the first word and padding is never attended to,
    so a prefix's last output equals the same position of the unpadded document, whatever the padding."""
    model = model_for("transformer")
    document = tokens(batch=1, steps=STEPS)
    with torch.no_grad():
        whole = model(document)[0]
        for length in (1, 4, STEPS):
            for pad in (0, 3, 7):
                prefix = torch.cat([torch.zeros(1, pad, dtype=torch.long), document[:, :length]], 1)
                last = model(prefix, last_only=True)[0]
                torch.testing.assert_close(last, whole[length - 1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_the_fused_heads_gradients_reach_every_weight_as_autograd_does(arch):
    """∂loss/∂θ through the whole network: the fused head's closed form against autograd over the whole outputs (float64)."""
    objective = objective_for("ce", None, "confidence", 0.5)
    inputs = tokens()
    scored = torch.ones(BATCH, STEPS, dtype=torch.bool)
    target = inputs.roll(-1, 1)[scored]
    grads = []
    for fused in (True, False):
        model = model_for(arch, output_embedding="tied", hidden_size=SHAPES["embedding_dim"]).double()
        features = model.features(inputs, scored=scored)
        if fused:
            loss = head_loss_and_metrics(features, model.output.weight, model.output.bias, target, objective, "softmax")
        else:
            loss = objective.losses(Outputs(model.output(features), "softmax"), target).mean()
        loss.backward()
        grads.append({name: p.grad for name, p in model.named_parameters()})
    fused_grads, reference = grads
    assert fused_grads.keys() == reference.keys() and "embedding.weight" in reference
    for name, grad in reference.items():
        assert grad.norm() > 0, name
        assert (fused_grads[name] - grad).norm() <= RELATIVE * grad.norm(), name


@pytest.mark.parametrize(
    ("arch", "extra"),
    [("gru", {}), ("transformer", {"model__output_embedding": "tied", "train__batching": "prefix"})],
)
def test_a_run_trains_saves_loads_generates_and_resumes(arch, extra, small_corpus, tmp_path):
    config = tiny_config("arch", small_corpus, model__arch=arch, model__heads=2, **extra)
    events = list(Trainer.new(config, tmp_path).events())
    assert isinstance(events[-1], RunFinished), events[-1]
    run = load_run(tmp_path, "arch")
    assert run.record.config.model.arch == arch
    with torch.no_grad():  # the saved weights are the trained ones: a second load scores the same
        inputs = tokens()
        torch.testing.assert_close(load_run(tmp_path, "arch").model(inputs), run.model(inputs))
    if extra:
        assert run.model.output.weight is run.model.embedding.weight  # still tied after loading
    for strategy in (Strategy(), Strategy(top_k=3, seed=1)):
        continuation = generate(run, "the government", 6, strategy)
        assert len(continuation.words) == 6 and set(continuation.words) <= set(run.record.vocab)
        assert all(0 <= step.entropy < 10 for step in continuation.steps)
    resumed = list(Trainer.resume(tmp_path, "arch", epochs=2).events())
    assert isinstance(resumed[0], RunStarted) and resumed[0].start_step == run.record.step
    assert isinstance(resumed[-1], RunFinished)
    assert load_run(tmp_path, "arch").record.epochs_completed == 2


def test_generation_beyond_the_transformers_positions_keeps_its_last_words(small_corpus, tmp_path):
    config = tiny_config("short", small_corpus, model__arch="transformer", model__heads=2, model__context=12)
    list(Trainer.new(config, tmp_path).events())
    continuation = generate(load_run(tmp_path, "short"), "the government", 30)
    assert len(continuation.words) == 30


def test_a_run_saved_before_architectures_loads_as_an_lstm(saved_runs, tmp_path):
    import shutil

    shutil.copytree(saved_runs / "base", tmp_path / "base")
    path = tmp_path / "base" / "run.json"
    record = json.loads(path.read_text())
    for key in ("arch", "heads", "context", "output_embedding"):
        del record["config"]["model"][key]
    path.write_text(json.dumps(record))
    run = load_run(tmp_path, "base")
    assert run.record.config.model.arch == "lstm" and isinstance(run.model.recurrent, torch.nn.LSTM)
    assert generate(run, "the government", 3).words


@pytest.mark.parametrize("arch", ["gru", "transformer"])
def test_each_stacked_member_trains_as_its_solo_twin(arch, small_corpus, tmp_path):
    """GRU and transformer stacks take the per-member form (the solo model's code on each member's slices)."""
    objective = {"objective__loss": "ce", "objective__regularizer": "confidence", "model__arch": arch, "model__heads": 2}
    configs = sweep(small_corpus, objective, [0.0, 1.0], arch, model__output_embedding="tied", model__hidden_size=8)
    events = list(StackedTrainer.new(configs, tmp_path).events())
    for config in configs:
        assert_same_run(of_member(events, config.name), solo_twin(config, tmp_path))


def test_settings_that_do_not_fit_the_architecture_are_refused_in_one_sentence(small_corpus, tmp_path, capsys):
    with pytest.raises(ValueError, match="heads must divide --embedding-dim 16"):
        ModelConfig(arch="transformer", embedding_dim=16, heads=3)
    with pytest.raises(ValueError, match="the transformer starts as GPT-2"):
        ModelConfig(arch="transformer", init="keras")
    with pytest.raises(ValueError, match=r"--hidden-size \(24\) equal to --embedding-dim \(16\) in a recurrent network \(lstm\)"):
        ModelConfig(embedding_dim=16, hidden_size=24, output_embedding="tied")
    options = ["--corpus", str(small_corpus), "--checkpoints", str(tmp_path), "--device", "cpu", "--arch", "transformer"]
    assert main(["train", *options, "--context", "5", "--epochs", "1"]) == 2
    assert "more than the transformer's 5 positions; give --context 11 or more." in capsys.readouterr().err
    with pytest.raises(UserError, match="--init keras is the study's LSTM's"):
        tiny_config("x", small_corpus, preset="paper", model__arch="transformer")


def test_a_transformer_members_memory_estimate_counts_its_attention_scores(small_corpus):
    from engine.lm.corpus import load_corpus
    from engine.training.stacked import activation_bytes

    config = tiny_config("m", small_corpus, model__arch="transformer", model__heads=2)
    corpus = load_corpus(config.corpus)
    more_heads = config.model_copy(update={"model": config.model.model_copy(update={"heads": 8})})
    assert (
        activation_bytes(more_heads, corpus)
        > activation_bytes(config, corpus)
        > 16 * parameter_count(len(corpus.vocab), config.model)
    )
