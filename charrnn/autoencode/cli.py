"""`charrnn autoencode`: write sentences back from their vectors (arguments or stdin lines),
`autoencode train`, `autoencode interpolate` and `autoencode eval`. Thin commands over
charrnn.autoencode.task, like the rest of the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..cli_options import TRAINING_OPTIONS, TrainingOptions, with_options
from ..cli_support import CONTEXT, DEFAULT_COMMAND, DefaultCommandGroup, finish_training, input_lines
from ..errors import UsageError
from ..numbers import check_range

autoencode_app = typer.Typer(
    cls=DefaultCommandGroup,
    context_settings=CONTEXT,
    help="A sequence autoencoder: each sentence becomes one vector and is written back from it alone. "
         "[bold]charrnn autoencode [TEXT]...[/bold] writes texts back (the bundled English model, or -c RUN); subcommands train, interpolate "
         "and evaluate models; `charrnn embed -c RUN` gives the vectors.",
    rich_markup_mode="rich",
)
BUNDLED = "sentences"  # charrnn/models/sentences.pt
Checkpoint = Annotated[Path, typer.Option("--checkpoint", "-c", help="Autoencoder checkpoint: a file, a run folder, or a bundled model's name.")]
Beam = Annotated[int, typer.Option(help="Beam size; 1 is greedy decoding.")]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")]


@autoencode_app.command(DEFAULT_COMMAND, context_settings=CONTEXT, hidden=True)
def autoencode_text(
    texts: Annotated[Optional[list[str]], typer.Argument(metavar="TEXT", help="Sentences to write back \\[default: lines from stdin].")] = None,
    checkpoint: Checkpoint = Path(BUNDLED),
    beam: Beam = 1,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines: text, written back, exact.")] = False,
    device: Device = "auto",
    encoding: Annotated[str, typer.Option(help="Text encoding of stdin.")] = "utf-8",
):
    """Encode each sentence to its vector and write it back from the vector alone (one output line
    per input line)."""
    from .task import load_autoencoder, reconstruct

    chunks = input_lines(texts, "sentences to write back", encoding)
    model, vocab, _ = load_autoencoder(checkpoint, device=device)
    for lines in chunks:
        for text, written in zip(lines, reconstruct(model, vocab, lines, beam=beam)):
            if as_json:
                sys.stdout.write(json.dumps({"text": text, "written": written, "exact": written == text.strip()},
                                            ensure_ascii=False) + "\n")
            else:
                sys.stdout.write(written + "\n")
        sys.stdout.flush()


@autoencode_app.command("train", context_settings=CONTEXT)
@with_options(TRAINING_OPTIONS, defaults=dict(
    cell="gru", hidden_size=256, num_layers=1, embedding_size=128, dropout=0.1, tokenizer="char", vocab_size=4000,
    batch_size=64, lr=2e-3, min_lr_ratio=0.1, warmup_steps=100, weight_decay=0.1, eval_every=500,
), helps={
    "hidden_size": "Width of the sentence vector: the decoder's units (an LSTM's vector has twice as many numbers); "
                   "each encoder direction has half.",
    "num_layers": "Encoder and decoder layers.",
    "batch_size": "Sentences per batch.",
    "eval_every": "Evaluate on the dev sentences every N steps.",
    "epochs": "Stop after this many passes over the training sentences \\[default: 10 when no other stop is given].",
})
def autoencode_train(
    sentences: Annotated[Optional[str], typer.Argument(help="Sentences, one a line (plain or gzip), or a column of tab-separated lines (with --resume: the run's own when left out).")] = None,
    column: Annotated[int, typer.Option(rich_help_panel="Data", help="Of tab-separated lines, the column that holds the sentence (1: the first).")] = 1,
    encoding: Annotated[str, typer.Option(rich_help_panel="Data", help="Text encoding of the sentence file.")] = "utf-8",
    test_size: Annotated[int, typer.Option(rich_help_panel="Data", help="Held-out test sentences.")] = 1000,
    dev_size: Annotated[int, typer.Option(rich_help_panel="Data", help="Dev sentences for early stopping.")] = 1000,
    max_tokens: Annotated[int, typer.Option(rich_help_panel="Data", help="Leave out training sentences longer than this.")] = 120,
    word_dropout: Annotated[float, typer.Option(rich_help_panel="Optimisation", help="Share of the decoder's input tokens replaced by <unk> in training, so it must read the vector.")] = 0.25,
    noise: Annotated[float, typer.Option(rich_help_panel="Optimisation", help="Share of the encoder's input tokens deleted in training (a denoising autoencoder); 0: none.")] = 0.0,
    typed_copies: Annotated[float, typer.Option(rich_help_panel="Data", help="Share of the training sentences also given as people type them (lower-case, no final punctuation).")] = 0.25,
    **shared,
):
    """Train a sequence autoencoder on sentences; checkpoints go to checkpoints/<file name>/."""
    from ..console import TrainingProgress
    from .task import AutoencoderDataConfig, train_autoencoder

    options = TrainingOptions.take(shared)
    data = AutoencoderDataConfig(tokenizer=options.tokenizer, vocab_size=options.vocab_size, batch_size=options.batch_size,
                                 max_tokens=max_tokens, test_size=test_size, dev_size=dev_size, column=column,
                                 encoding=encoding, word_dropout=word_dropout, noise=noise,
                                 typed_copies=typed_copies)
    model = options.model_options()
    layers = model.pop("num_layers")
    model_config = dict(model, encoder_layers=layers, decoder_layers=layers)
    progress = TrainingProgress(quiet=options.quiet, unit="tok")
    result = train_autoencoder(sentences, model_config=model_config, data=data,
                               train=options.train_config(default_epochs=10.0), run_dir=options.run_dir,
                               resume=options.resume, device=options.device, precision=options.precision,
                               overwrite=options.overwrite, on_event=progress)
    finish_training(result, quiet=options.quiet, command="charrnn autoencode train", as_json=options.as_json)


@autoencode_app.command("interpolate", context_settings=CONTEXT)
def autoencode_interpolate(
    first: Annotated[str, typer.Argument(help="The sentence to start from.")],
    last: Annotated[str, typer.Argument(help="The sentence to end at.")],
    checkpoint: Checkpoint = Path(BUNDLED),
    steps: Annotated[int, typer.Option(help="Sentences written, the two ends included, from vectors evenly spaced between the two sentences'.")] = 5,
    beam: Beam = 1,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object: the steps' weights and sentences.")] = False,
    device: Device = "auto",
):
    """Walk the vector space from one sentence to another: one line a step."""
    from .task import interpolate, load_autoencoder

    check_range(steps, "--steps", 2, 1000)
    model, vocab, _ = load_autoencoder(checkpoint, device=device)
    written = interpolate(model, vocab, first, last, steps=steps, beam=beam)
    if as_json:
        weights = [round(i / (steps - 1), 4) for i in range(steps)]
        print(json.dumps({"from": first, "to": last, "steps": [{"weight": w, "text": t} for w, t in zip(weights, written)]},
                         ensure_ascii=False))
    else:
        print("\n".join(written))


@autoencode_app.command("eval", context_settings=CONTEXT)
def autoencode_eval(
    checkpoint: Checkpoint = Path(BUNDLED),
    data: Annotated[Optional[str], typer.Option(help="The sentence file the model was trained on \\[default: the path in the checkpoint].")] = None,
    beam: Beam = 1,
    part: Annotated[str, typer.Option(help="The held-out sentences to score: test (to report) or dev (to choose settings with).")] = "test",
    typed: Annotated[bool, typer.Option("--typed", help="Score the sentences as people type them (lower-case, no final punctuation; the same every run).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The figures as one JSON object.")] = False,
    device: Device = "auto",
):
    """Reconstruction figures on the run's held-out test sentences: the share written back
    exactly, and the character error rate (edit distance over characters)."""
    from .task import as_typed, held_out_sentences, load_autoencoder, reconstruction_figures

    if part not in ("test", "dev"):
        raise UsageError(f"--part must be test or dev, not {part!r}")
    model, vocab, saved = load_autoencoder(checkpoint, device=device)
    sentences = held_out_sentences(saved, data, part=part)
    figures = reconstruction_figures(model, vocab, as_typed(sentences) if typed else sentences, beam=beam)
    if as_json:
        print(json.dumps({"part": part, "typed": typed, "sentences": figures.sentences, "exact": figures.exact,
                          "character_error_rate": figures.character_error_rate, "beam": beam}))
    else:
        print(f"{part} sentences{' as typed' if typed else ''}: {figures.sentences:,}\nexact: {figures.exact:.1%}\n"
              f"character error rate: {figures.character_error_rate:.2%}")
