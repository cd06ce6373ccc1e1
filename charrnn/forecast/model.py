"""The forecaster: a window of past values in, quantiles of the next horizon values out. The body is
one of the shared layers (a recurrent stack from cells.py, or the WaveNet stack), read directly
(one head for all steps) or as a sequence-to-sequence decoder (one step at a time); a linear path
from the window to the output beside it carries what a linear model already gets right."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ..cells import CELL_TYPES, Recurrent, RecurrentConfig, check_recurrent_options
from ..errors import UsageError
from ..wavenet import WaveNet, WaveNetConfig, check_wavenet_options

MODELS = (*CELL_TYPES, "wavenet")
DECODERS = ("direct", "seq2seq")
# The 10%, 50% and 90% quantiles: the median is the forecast, the outer two the 80% interval.
QUANTILES = (0.1, 0.5, 0.9)
MAX_HORIZON = 10_000
MAX_WINDOW = 100_000


@dataclass
class ForecasterConfig:
    window: int  # past values read at each forecast
    horizon: int  # future values predicted
    model: str = "wavenet"  # measured best on the validation parts (README, "Forecasting")
    hidden_size: int = 64  # a recurrent layer's output, or the WaveNet's channels
    num_layers: int = 2  # stacked recurrent layers, or the WaveNet's dilated layers (None: enough for the window)
    dropout: float = 0.0
    bidirectional: bool = False  # a recurrent encoder reads the window both ways
    decoder: str = "direct"
    quantiles: list[float] = field(default_factory=lambda: list(QUANTILES))

    def __post_init__(self):
        self.check_options(self.__dict__)

    @staticmethod
    def check_options(options: dict) -> None:
        """The model options, checked before any data is read (see ForecasterConfig)."""
        model = options.get("model", "wavenet")
        if model not in MODELS:
            raise UsageError(f"unknown --model {model!r}; choose one of {', '.join(MODELS)}")
        decoder = options.get("decoder", "direct")
        if decoder not in DECODERS:
            raise UsageError(f"unknown --decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
        hidden_size, dropout = options.get("hidden_size", 64), options.get("dropout")
        num_layers = options.get("num_layers") or 2  # None: chosen from the window (see wavenet_layers_for)
        if model == "wavenet":
            if decoder != "direct" or options.get("bidirectional"):
                raise UsageError("--model wavenet reads its window causally in one pass: it has no --decoder seq2seq "
                                 "or --bidirectional")
            check_wavenet_options(hidden_size, num_layers, stacks=1, dropout=dropout)
        else:
            check_recurrent_options(model, hidden_size, num_layers, dropout)
        for name, low, high in (("horizon", 1, MAX_HORIZON), ("window", 2, MAX_WINDOW)):
            value = options.get(name, low)
            if not low <= value <= high:
                raise UsageError(f"--{name} must be between {low} and {high:,}, not {value:,}")

    @property
    def receptive_field(self) -> int:
        """How many past values one forecast can read: the window, or for a WaveNet the part of
        it its dilations reach."""
        if self.model == "wavenet":
            return min(self.window, self.wavenet_config().receptive_field)
        return self.window

    def wavenet_config(self) -> WaveNetConfig:
        return WaveNetConfig(input_size=1, channels=self.hidden_size, layers_per_stack=self.num_layers,
                             dropout=self.dropout)


def wavenet_layers_for(window: int) -> int:
    """The fewest dilated layers (kernel 2, dilations 1, 2, 4, ...) whose receptive field covers
    the window."""
    return max(1, math.ceil(math.log2(window)))


class Forecaster(nn.Module):
    """forward(x (B, window)) -> (B, horizon, Q): the quantiles of each future step, in the units of
    the windows (changes from the last known value, scaled; see windows.py)."""

    task = "forecaster"

    def __init__(self, config: ForecasterConfig):
        super().__init__()
        self.config = config
        H, Q = config.horizon, len(config.quantiles)
        if config.model == "wavenet":
            self.body = WaveNet(config.wavenet_config())
            summary_size = self.body.output_size
        else:
            self.body = Recurrent(RecurrentConfig(cell=config.model, input_size=1, hidden_size=config.hidden_size,
                                                  num_layers=config.num_layers, dropout=config.dropout,
                                                  bidirectional=config.bidirectional))
            summary_size = self.body.output_size
        self.dropout = nn.Dropout(config.dropout)
        # The linear path (LSTNet's "highway"): on a few dozen windows, the network learns the
        # nonlinear rest faster when the linear part of the answer needs no hidden units.
        self.linear = nn.Linear(config.window, H * Q)
        if config.decoder == "seq2seq":
            self.bridge = nn.Linear(summary_size, config.hidden_size * config.num_layers)
            self.decoder = Recurrent(RecurrentConfig(cell=config.model, input_size=1, hidden_size=config.hidden_size,
                                                     num_layers=config.num_layers, dropout=config.dropout))
            self.head = nn.Linear(config.hidden_size, Q)
        else:
            self.head = nn.Linear(summary_size, H * Q)
        # How far the outer quantiles sit from the median, as a multiple of what the network
        # predicts: fitted on the validation windows (calibrate_interval), saved with the weights.
        self.register_buffer("interval_width", torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, Q = x.shape[0], self.config.horizon, len(self.config.quantiles)
        summary = self.dropout(self._summary(x.unsqueeze(-1)))  # (B, S)
        linear = self.linear(x).view(B, H, Q)
        if self.config.decoder == "direct":
            return self.head(summary).view(B, H, Q) + linear
        return self._decode(summary, x[:, -1], linear)

    def _summary(self, x: torch.Tensor) -> torch.Tensor:
        """What the body makes of the window (B, T, 1): the output at the last step (for a
        bidirectional encoder, the backward direction's at the first, which has read it all)."""
        if self.config.model == "wavenet":
            return self.body(x)[0][:, -1]
        out, _ = self.body(x)  # (B, T, H * D)
        if not self.config.bidirectional:
            return out[:, -1]
        hidden = self.config.hidden_size
        return torch.cat([out[:, -1, :hidden], out[:, 0, hidden:]], dim=-1)

    def _decode(self, summary: torch.Tensor, last: torch.Tensor, linear: torch.Tensor) -> torch.Tensor:
        """Sequence to sequence: a decoder started from the window's summary steps through the
        horizon, reading its own previous median (the last known value first), as it will when
        forecasting: training and forecasting run the same computation."""
        B, L, hidden = summary.shape[0], self.config.num_layers, self.config.hidden_size
        h = torch.tanh(self.bridge(summary)).view(B, L, hidden).transpose(0, 1).contiguous()  # (L, B, H)
        state = (h, torch.zeros_like(h)) if self.config.model == "lstm" else (h,)
        median = self.config.quantiles.index(0.5) if 0.5 in self.config.quantiles else 0
        previous = last.view(B, 1, 1)
        steps = []
        for k in range(self.config.horizon):
            out, state = self.decoder(previous, state)  # (B, 1, H)
            step = self.head(self.dropout(out[:, 0])) + linear[:, k]  # (B, Q)
            steps.append(step)
            previous = step[:, median].view(B, 1, 1)
        return torch.stack(steps, dim=1)


    def calibrated(self, quantiles: torch.Tensor) -> torch.Tensor:
        """Quantiles (..., Q), sorted, with the outer ones moved from the median by interval_width."""
        quantiles = quantiles.sort(dim=-1).values
        median = quantiles[..., self.config.quantiles.index(0.5)].unsqueeze(-1)
        return median + self.interval_width * (quantiles - median)

    @torch.no_grad()
    def calibrate_interval(self, quantiles: torch.Tensor, target: torch.Tensor, coverage: float) -> None:
        """Set interval_width so that the interval between the outer quantiles holds `coverage` of
        the targets (conformal calibration on held-out windows: quantile regression on a few dozen
        windows learns intervals too narrow or too wide). quantiles (N, H, Q) raw, target (N, H)."""
        quantiles = quantiles.float().sort(dim=-1).values
        median = quantiles[..., self.config.quantiles.index(0.5)]
        below = (median - quantiles[..., 0]).clamp_min(1e-6)
        above = (quantiles[..., -1] - median).clamp_min(1e-6)
        # The width each target needs to be inside: its distance from the median in units of the
        # interval's half on its side.
        needed = torch.where(target < median, (median - target) / below, (target - median) / above)
        self.interval_width.fill_(float(torch.quantile(needed.flatten(), coverage)))


def quantile_loss(predicted: torch.Tensor, target: torch.Tensor, quantiles: list[float]) -> torch.Tensor:
    """The pinball loss averaged over steps and quantiles: for quantile q, q * error when the value
    is above the prediction and (1 - q) * -error when below, whose minimum is the true quantile.
    predicted (B, H, Q), target (B, H)."""
    q = torch.tensor(quantiles, device=predicted.device, dtype=torch.float32)
    error = target.float().unsqueeze(-1) - predicted.float()
    return torch.maximum(q * error, (q - 1) * error).mean()
