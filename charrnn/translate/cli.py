"""`charrnn translate`: translate text (arguments or stdin lines), `translate train` and
`translate eval`. Thin commands over charrnn.translate.task, like the rest of the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..cli_options import TRAINING_OPTIONS, TrainingOptions, with_options
from ..cli_support import CONTEXT, DEFAULT_COMMAND, DefaultCommandGroup, finish_training, input_lines
from ..errors import UsageError
from ..output_files import check_plot_file
from ..numbers import check_range

BUNDLED = "spa-eng"  # charrnn/models/spa-eng.pt

translate_app = typer.Typer(
    cls=DefaultCommandGroup,
    context_settings=CONTEXT,
    help="Translate sentences (English to Spanish with the bundled model): "
         "[bold]charrnn translate [OPTIONS] [TEXT]...[/bold], or lines from stdin. Subcommands train and evaluate models.",
    rich_markup_mode="rich",
)


@translate_app.command(DEFAULT_COMMAND, context_settings=CONTEXT, hidden=True)
def translate_text(
    texts: Annotated[Optional[list[str]], typer.Argument(metavar="TEXT", help="Sentences to translate \\[default: lines from stdin].")] = None,
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="Translator checkpoint: a file, a run folder, or a bundled model's name.")] = Path(BUNDLED),
    beam: Annotated[int, typer.Option(help="Beam size; 1 is greedy decoding.")] = 1,
    max_len: Annotated[Optional[int], typer.Option(help="Longest output in tokens \\[default: twice the input plus 10, at most 256].")] = None,
    length_penalty: Annotated[float, typer.Option(help="Beam search: rank by score / length ** this.")] = 1.0,
    no_repeat_ngram: Annotated[Optional[int], typer.Option(help="Never repeat an n-gram of this many tokens; 0 allows repeats \\[default: 3 BPE tokens, 16 characters].")] = None,
    normalise: Annotated[Optional[bool], typer.Option("--normalise/--no-normalise", help="First write each line as the training sources are written: a capital first letter, names with their capitals, and final punctuation ('?' for an English question) \\[default: when the model's training sources were written so, as the bundled model's are].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines: source, the source as read, translation, score.")] = False,
    plot: Annotated[Optional[Path], typer.Option(help="Save the attention weights of the translation as a PNG heat map (one sentence).")] = None,
    batch_size: Annotated[int, typer.Option(help="Sentences decoded together.")] = 64,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    encoding: Annotated[str, typer.Option(help="Text encoding of stdin (utf-8, latin-1, cp1252, ...).")] = "utf-8",
):
    """Translate sentences given as arguments, or stdin lines (one output line per input line)."""
    from ..plots import plot_attention
    from .task import UNK, TranslationDataConfig, attention_weights, load_translator, token_strings, translate

    check_range(batch_size, "--batch-size", low=1)
    if plot is not None:
        check_plot_file(plot, "--plot")
    chunks = input_lines(texts, "sentences to translate", encoding)
    model, source_vocab, target_vocab, payload = load_translator(checkpoint, device=device)
    data = TranslationDataConfig.from_checkpoint(payload)
    if normalise is None:
        normalise = bool(data.written_sources)
    plotted = False
    for lines in chunks:
        results = translate(model, source_vocab, target_vocab, lines, beam=beam, max_len=max_len,
                            batch_size=batch_size, length_penalty=length_penalty,
                            no_repeat_ngram=no_repeat_ngram, normalise=normalise, casing=data.source_casing)
        if plot is not None:
            sentences = [r for r in results if r.read_as]
            if plotted or len(sentences) != 1:
                raise UsageError("--plot draws one translation: give exactly one sentence")
            weights = attention_weights(model, source_vocab, sentences[0])
            if weights is None:
                raise UsageError("this model has no attention to plot")
            source_ids = source_vocab.encode(sentences[0].read_as, unknown_id=UNK)
            plot_attention(weights, token_strings(source_vocab, source_ids),
                           token_strings(target_vocab, sentences[0].tokens) + ["</s>"], plot)
            plotted = True
        for result in results:
            if as_json:
                line = json.dumps({"source": result.source, "read_as": result.read_as, "translation": result.text,
                                   "score": round(result.score, 4)}, ensure_ascii=False)
            else:
                line = result.text
            sys.stdout.write(line + "\n")
        sys.stdout.flush()


@translate_app.command("train", context_settings=CONTEXT)
@with_options(TRAINING_OPTIONS, defaults=dict(
    cell="gru", hidden_size=256, num_layers=2, embedding_size=256, dropout=0.2, tokenizer="bpe", vocab_size=8000,
    batch_size=64, lr=2e-3, min_lr_ratio=0.1, warmup_steps=200, weight_decay=0.1, eval_every=500,
), helps={
    "hidden_size": "Width of each layer's output: the decoder's units; each encoder direction has half.",
    "num_layers": "Encoder and decoder layers (see --encoder-layers, --decoder-layers).",
    "batch_size": "Sentence pairs per batch.",
    "eval_every": "Evaluate on the dev pairs every N steps.",
    "epochs": "Stop after this many passes over the training pairs \\[default: 10 when no other stop is given].",
})
def translate_train(
    pairs: Annotated[Optional[str], typer.Argument(help="source<TAB>target lines, plain or gzip (with --resume: the run's own when left out).")] = None,
    reverse: Annotated[bool, typer.Option("--reverse", rich_help_panel="Data", help="Swap the direction (target to source).")] = False,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", rich_help_panel="Data", help="Skip malformed lines instead of stopping.")] = False,
    encoding: Annotated[str, typer.Option(rich_help_panel="Data", help="Text encoding of the pair file.")] = "utf-8",
    shared_vocab: Annotated[bool, typer.Option("--shared-vocab", rich_help_panel="Data", help="One vocabulary for both sides.")] = False,
    test_size: Annotated[int, typer.Option(rich_help_panel="Data", help="Held-out test pairs (split by source sentence).")] = 2000,
    dev_size: Annotated[int, typer.Option(rich_help_panel="Data", help="Dev pairs for early stopping.")] = 2000,
    max_tokens: Annotated[int, typer.Option(rich_help_panel="Data", help="Leave out training pairs longer than this.")] = 120,
    typed_copies: Annotated[float, typer.Option(rich_help_panel="Data", help="Share of the training pairs also given with the source as people type it (lower-case, no final punctuation).")] = 0.0,
    attention: Annotated[str, typer.Option(rich_help_panel="Model", help="additive (measured best), multiplicative or none.")] = "additive",
    encoder_layers: Annotated[Optional[int], typer.Option(rich_help_panel="Model", help="Encoder layers \\[default: --num-layers].")] = None,
    decoder_layers: Annotated[Optional[int], typer.Option(rich_help_panel="Model", help="Decoder layers \\[default: --num-layers].")] = None,
    tie_embeddings: Annotated[bool, typer.Option("--tie-embeddings/--no-tie-embeddings", rich_help_panel="Model", help="The output layer shares the target embedding matrix (needs --embedding-size equal to --hidden-size).")] = False,
    label_smoothing: Annotated[float, typer.Option(rich_help_panel="Optimisation", help="Label smoothing of the training loss.")] = 0.1,
    **shared,
):
    """Train a translator on sentence pairs; checkpoints go to checkpoints/<pairs name>/."""
    from ..console import TrainingProgress
    from .task import TranslationDataConfig, train_translator

    options = TrainingOptions.take(shared)
    data = TranslationDataConfig(tokenizer=options.tokenizer, vocab_size=options.vocab_size, shared_vocab=shared_vocab,
                                 batch_size=options.batch_size, max_tokens=max_tokens, test_size=test_size,
                                 dev_size=dev_size, reverse=reverse, skip_bad=skip_bad, encoding=encoding,
                                 typed_copies=typed_copies)
    model = options.model_options()
    layers = model.pop("num_layers")
    model_config = dict(model, attention=attention, encoder_layers=encoder_layers or layers,
                        decoder_layers=decoder_layers or layers, tie_embeddings=tie_embeddings,
                        label_smoothing=label_smoothing)
    progress = TrainingProgress(quiet=options.quiet, unit="tok")
    result = train_translator(pairs, model_config=model_config, data=data, train=options.train_config(default_epochs=10.0),
                              run_dir=options.run_dir, resume=options.resume, device=options.device,
                              precision=options.precision, overwrite=options.overwrite, on_event=progress)
    finish_training(result, quiet=options.quiet, command="charrnn translate train", as_json=options.as_json)


@translate_app.command("eval", context_settings=CONTEXT)
def translate_eval(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="Translator checkpoint: a file, a run folder, or a bundled model's name.")] = Path(BUNDLED),
    data: Annotated[Optional[str], typer.Option(help="The pair file the model was trained on \\[default: the path in the checkpoint].")] = None,
    split: Annotated[str, typer.Option(help="test (held out, for reporting) or dev (for choosing settings).")] = "test",
    beam: Annotated[int, typer.Option(help="Beam size to report beside greedy decoding.")] = 5,
    examples: Annotated[int, typer.Option(help="Example translations to show (on stderr).")] = 5,
    batch_size: Annotated[int, typer.Option(help="Sentences decoded together.")] = 64,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    encoding: Annotated[Optional[str], typer.Option(help="Text encoding of the --data file \\[default: the training run's].")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip malformed lines of the --data file instead of stopping.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one a decoding: decoding, beam, bleu, chrf, looping, sentences_per_second, pairs, split.")] = False,
):
    """BLEU and chrF (sacrebleu) on the held-out test pairs, greedy and beam: one line a decoding
    on stdout (tab-separated, with a header), examples on stderr."""
    from rich.table import Table

    from ..console import stderr_console
    from .task import MAX_BEAM, evaluate_translations, held_out_pairs, load_translator

    check_range(beam, "--beam", 1, MAX_BEAM)
    check_range(batch_size, "--batch-size", low=1)
    model, source_vocab, target_vocab, payload = load_translator(checkpoint, device=device)
    pairs = held_out_pairs(payload, data, split, encoding=encoding, skip_bad=skip_bad)
    stderr_console.print(f"{len(pairs):,} held-out {split} pairs (sources never seen in training)")
    results = evaluate_translations(model, source_vocab, target_vocab, pairs, beams=sorted({1, beam}), batch_size=batch_size)
    if not as_json:
        print("decoding\tbleu\tchrf\tlooping\tsentences_per_second")
    for r in results:
        if as_json:
            print(json.dumps({"decoding": r.decoding, "beam": r.beam, "bleu": r.bleu, "chrf": r.chrf, "looping": r.looping,
                              "sentences_per_second": r.sentences_per_second, "pairs": len(pairs), "split": split}))
        else:
            print(f"{r.decoding}\t{r.bleu:.2f}\t{r.chrf:.2f}\t{r.looping}\t{r.sentences_per_second:.0f}")
    if examples > 0:
        shown = Table(title=f"examples ({results[-1].decoding})", show_lines=True)
        for column in ("source", "reference", "translation"):
            shown.add_column(column)
        for (source, reference), output in list(zip(pairs, results[-1].outputs))[:examples]:
            shown.add_row(source, reference, output.text)
        stderr_console.print(shown)
