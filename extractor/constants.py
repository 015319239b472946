"""Every audio and model parameter of the extractor, named once.

The front end and network follow MSD_musicnn (Pons & Serra, 2019) as shipped in
the PyPI wheel musicnn==0.1.0; derived values are computed from the others.
"""

from __future__ import annotations

# -- audio front end (must match what MSD_musicnn was trained on) ---------------------
SAMPLE_RATE_HZ = 16_000
N_FFT = 512
HOP_LENGTH = 256
N_MELS = 96
MEL_FMIN_HZ = 0.0
MEL_FMAX_HZ = SAMPLE_RATE_HZ / 2
# log10(LOG_MEL_SCALE * power + 1): the model's "logC" pre-processing.
LOG_MEL_SCALE = 10_000.0
PATCH_FRAMES = 187
PATCH_SECONDS = PATCH_FRAMES * HOP_LENGTH / SAMPLE_RATE_HZ  # ≈ 3 s

# -- what audio is accepted -----------------------------------------------------------
MIN_DURATION_S = 3.0
MIN_SAMPLES = int(MIN_DURATION_S * SAMPLE_RATE_HZ)
MAX_AUDIO_BYTES = 20 * 1024 * 1024
# A clip whose loudest sample stays below this is silence (or a broken encode), not music.
SILENCE_PEAK_DBFS = -60.0
SILENCE_PEAK_AMPLITUDE = 10 ** (SILENCE_PEAK_DBFS / 20)
# Float audio may go a little past full scale; a peak beyond this is not a recording, and its
# power spectrum overflows float32 (at +600 dBFS, amplitude 1e30, every feature is inf).
MAX_PEAK_DBFS = 60.0
MAX_PEAK_AMPLITUDE = 10 ** (MAX_PEAK_DBFS / 20)

# -- model ------------------------------------------------------------------------------
WEIGHTS_PACKAGE = "musicnn"
WEIGHTS_FOLDER = "MSD_musicnn"
# Units of the back-end's dense layer, whose batch-normed output is the 'penultimate' layer.
PENULTIMATE_UNITS = 200
N_TAGS = 50
TOP_TAGS = 5
BATCH_NORM_EPSILON = 1e-3
TIMBRAL_FILTERS = 204
TIMBRAL_KERNEL_FRAMES = 7
# Timbral kernels span 40 % and 70 % of the mel axis.
TIMBRAL_KERNEL_MELS = (int(0.4 * N_MELS), int(0.7 * N_MELS))
TEMPORAL_FILTERS = 51
TEMPORAL_KERNEL_FRAMES = (128, 64, 32)
FRONTEND_CHANNELS = len(TIMBRAL_KERNEL_MELS) * TIMBRAL_FILTERS + len(TEMPORAL_KERNEL_FRAMES) * TEMPORAL_FILTERS
MIDEND_FILTERS = 64
MIDEND_KERNEL_FRAMES = 7
MIDEND_LAYERS = 3
BACKEND_FEATURES = 2 * (FRONTEND_CHANNELS + MIDEND_LAYERS * MIDEND_FILTERS)
# The served embedding (extractor/embed.py, model id catalog.model.MODEL_ID): per patch the back-end's
# input, max and mean over time of the 753 front-end and mid-end features (1506, the 'mid-level'
# features), averaged over the clip's patches, signed square root, L2-normalised.
EMBEDDING_DIM = BACKEND_FEATURES

# Patches per forward call (one 30 s preview): bounds the activations' memory, which
# TF's allocator keeps (≈ +0.5 GB at 10 patches, +0.8 GB at 32) whatever the number
# of clips; larger calls are no faster on CPU.
PATCHES_PER_FORWARD = 10

# The 50 MSD tags in the order of the model's outputs (musicnn/configuration.py).
# fmt: off
MSD_TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock",
    "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill", "instrumental",
    "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental", "female vocalist",
    "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy", "catchy", "funk",
    "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad", "House", "happy",
)
# fmt: on

# -- descriptors (extractor/descriptors.py; ARCHITECTURE.md "Descriptors") -------------
# Onsets: mel band levels floored this far below the clip's loudest.
ONSET_TOP_DB = 50.0
# An onset rises at least this much (mean dB increase over the mel bands) above its surroundings.
ONSET_DELTA_DB = 1.0
# Tempo: autocorrelation of the onset envelope up to this lag, librosa's log-normal prior.
TEMPO_MAX_LAG_S = 4.0
TEMPO_PRIOR_BPM = 120.0
TEMPO_PRIOR_OCTAVES = 1.0
TEMPO_MAX_BPM = 200.0
TEMPO_MIN_BPM = 50.0
# The fastest octave level whose every other beat carries at least this share of the onset
# strength of the others is the beat (below it, the level is a subdivision).
TEMPO_LEVEL_SUPPORT = 0.2
# The period is refined on this many multiples of the chosen lag (a 16 ms frame is 3 % at 120 BPM).
TEMPO_REFINE_MULTIPLES = 4
# Key: a long-window spectrogram resolves semitones down to the bass (3.9 Hz bins).
KEY_N_FFT = 4096
KEY_HOP_LENGTH = 4096
# HPSS on mel bands pooled to 64 ms frames: median filters 9 frames (0.58 s) long and a third
# of the mel axis wide.
HPSS_POOL_FRAMES = 4
HPSS_TIME_KERNEL = 9
HPSS_BAND_KERNEL = 31
# Loudness: BS.1770's absolute gate; a clip quieter than this reports the gate itself.
LOUDNESS_FLOOR_LUFS = -70.0
LOUDNESS_RANGE_RELATIVE_GATE_LU = -20.0
LOUDNESS_RANGE_PERCENTILES = (10.0, 95.0)
# Energy's three terms map these ranges onto 0..1.
ENERGY_LEVEL_LUFS = (-40.0, -5.0)
ENERGY_ONSETS_PER_S = 8.0
ENERGY_BRIGHTNESS_HZ = 4000.0
