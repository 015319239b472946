"""A listener's models, trained from their Listens on every import.

* Sessions: consecutive plays whose gap (the next play's start minus the previous
  play's end) is under ``session_gap_s`` (an hour by default, as the system this
  came from defined them).
* Tastes: every played track weighted by its plays, each play decayed by its age
  (half-life ``half_life_days``); the weighted tracks are clustered (k-means, the
  number of clusters chosen by silhouette) so that two tastes stay two points.
* Affinity: k-nearest-neighbour regression (cosine, distance-weighted) from the track's
  features (embedding, descriptors where known) to log(1 + plays), trained on the played
  tracks and a sample of unplayed ones (0 plays), quality reported as the cross-validated
  Spearman correlation. On the simulated listeners it beat ridge regression (0.55 against
  0.47, and 0.46 for similarity to the centroid); bench/RESULTS.md, "bench/personal.py".
* Continuation: a linear map from [last track, mean of the session so far] to the next
  track's embedding, fitted by ridge on consecutive plays of the earlier sessions and
  measured (hit@10) on the latest ones against the last track's nearest neighbours.

Plays are matched to the catalogue again here, so tracks crawled since an import count.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
import numpy.typing as npt
from scipy.stats import spearmanr
from sklearn.cluster import KMeans
from sklearn.linear_model import Ridge
from sklearn.metrics import silhouette_score
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.neighbors import KNeighborsRegressor

from api.served import ServedIndex
from catalog.listens import Listen, iso_utc
from catalog.settings import env_float, env_int
from catalog.user_models import AFFINITY_NEIGHBOURS, UserModel, affinity_features, predict_next
from history.matching import CatalogueMatcher

SESSION_GAP_S_DEFAULT = 3600.0
HALF_LIFE_DAYS_DEFAULT = 30.0
MAX_TASTES_DEFAULT = 6
# Clusters must separate at least this well (silhouette) to be kept apart; else one taste.
MIN_SILHOUETTE = 0.1
NEGATIVES_PER_PLAYED = 2
CV_FOLDS = 5
MAX_PLAYS = 30  # the target the affinity model predicts is capped here, as in the system it replaces
TRANSITION_ALPHA = 1.0
MIN_TRANSITIONS = 20
HELD_OUT_SESSION_SHARE = 0.2
HIT_K = 10
SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class TrainingSettings:
    session_gap_s: float = SESSION_GAP_S_DEFAULT
    half_life_days: float = HALF_LIFE_DAYS_DEFAULT
    max_tastes: int = MAX_TASTES_DEFAULT
    seed: int = 0

    @classmethod
    def from_env(cls) -> TrainingSettings:
        return cls(
            session_gap_s=env_float("HISTORY_SESSION_GAP_S", SESSION_GAP_S_DEFAULT),
            half_life_days=env_float("HISTORY_HALF_LIFE_DAYS", HALF_LIFE_DAYS_DEFAULT),
            max_tastes=env_int("HISTORY_MAX_TASTES", MAX_TASTES_DEFAULT),
        )


def sessions_of(listens: Sequence[Listen], gap_s: float) -> list[list[Listen]]:
    """Plays in time order, cut wherever the silence between two plays reaches ``gap_s``."""
    sessions: list[list[Listen]] = []
    for listen in sorted(listens, key=lambda x: x.ended_at):
        if sessions and (listen.started_at - sessions[-1][-1].ended_at).total_seconds() < gap_s:
            sessions[-1].append(listen)
        else:
            sessions.append([listen])
    return sessions


def decayed_weights(listens: Iterable[Listen], now: datetime, half_life_days: float) -> dict[str, float]:
    """Per matched track: the sum over its non-skip plays of 0.5 ** (age / half-life)."""
    weights: dict[str, float] = defaultdict(float)
    for listen in listens:
        if listen.track_id and not listen.skipped:
            age_days = max(0.0, (now - listen.ended_at).total_seconds() / SECONDS_PER_DAY)
            weights[listen.track_id] += 0.5 ** (age_days / half_life_days)
    return dict(weights)


def fit_tastes(
    vectors: npt.NDArray[np.float32], weights: npt.NDArray[np.float64], max_tastes: int, seed: int = 0
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """(unit centroids, weights summing to 1): the weighted k-means with the best silhouette, or one taste."""
    best_labels = np.zeros(len(vectors), int)
    best_score = MIN_SILHOUETTE
    for k in range(2, min(max_tastes, len(vectors) - 1) + 1):
        labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(vectors, sample_weight=weights)
        if len(set(labels)) < 2:
            continue
        score = float(silhouette_score(vectors, labels, metric="cosine"))
        if score > best_score:
            best_score, best_labels = score, labels
    tastes = sorted(set(best_labels.tolist()))
    centroids = np.stack([np.average(vectors[best_labels == t], axis=0, weights=weights[best_labels == t]) for t in tastes])
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    share = np.array([weights[best_labels == t].sum() for t in tastes])
    order = np.argsort(-share)
    return centroids[order].astype(np.float32), (share[order] / share.sum()).astype(np.float32)


@dataclass(frozen=True)
class AffinityFit:
    features: npt.NDArray[np.float32]
    targets: npt.NDArray[np.float32]
    reference: npt.NDArray[np.float32]
    spearman: float
    examples: int


def fit_affinity(features: npt.NDArray[np.float32], plays: npt.NDArray[np.float64], seed: int = 0) -> AffinityFit:
    target = np.log1p(np.minimum(plays, MAX_PLAYS))
    folds = KFold(n_splits=min(CV_FOLDS, len(plays)), shuffle=True, random_state=seed)
    regressor = KNeighborsRegressor(n_neighbors=AFFINITY_NEIGHBOURS, weights="distance", metric="cosine")
    predicted = cross_val_predict(regressor, features, target, cv=folds)
    spearman = float(spearmanr(predicted, target).statistic)
    examples, targets = features.astype(np.float32), target.astype(np.float32)
    # The reference for the 0..1 score: what the served model (catalog.user_models) predicts, out of fold.
    return AffinityFit(
        features=examples,
        targets=targets,
        reference=np.sort(np.expm1(predicted)).astype(np.float32),
        spearman=0.0 if np.isnan(spearman) else round(spearman, 4),
        examples=len(plays),
    )


def transitions(sessions: Sequence[Sequence[str]], vector: Callable[[str], npt.NDArray[np.float32]]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """(X, Y): [last, mean of the session so far] -> next, for each consecutive pair of each session."""
    xs, ys = [], []
    for session in sessions:
        vectors = [vector(t) for t in session]
        running = np.cumsum(vectors, axis=0) if vectors else np.zeros((0, 0))
        for i in range(len(vectors) - 1):
            xs.append(np.concatenate([vectors[i], running[i] / (i + 1)]))
            ys.append(vectors[i + 1])
    if not xs:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
    return np.asarray(xs, np.float32), np.asarray(ys, np.float32)


def fit_transition(x: npt.NDArray[np.float32], y: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    model = Ridge(alpha=TRANSITION_ALPHA).fit(x, y)
    return model.coef_.T.astype(np.float32), model.intercept_.astype(np.float32)


def hit_at_k(
    index: ServedIndex,
    sessions: Sequence[Sequence[str]],
    predict: Callable[[Sequence[str]], npt.NDArray[np.float32]],
    k: int = HIT_K,
) -> tuple[float, int]:
    """(share of steps whose next track is among the k nearest unplayed tracks to the prediction, steps)."""
    hits = steps = 0
    for session in sessions:
        for i in range(1, len(session)):
            prefix = session[:i]
            found = index.search(predict(prefix), k, exclude=set(prefix))
            hits += session[i] in {n.track_id for n in found}
            steps += 1
    return (hits / steps if steps else 0.0), steps


def train_user(
    user_id: str,
    listens: Sequence[Listen],
    index: ServedIndex,
    matcher: CatalogueMatcher,
    now: datetime,
    settings: TrainingSettings = TrainingSettings(),
) -> tuple[UserModel, dict[str, object]]:
    """The listener's models and the profile GET /users/{userId} shows."""
    matched = [_rematched(listen, matcher) for listen in listens]
    served = [listen for listen in matched if listen.track_id and listen.track_id in index]
    sessions = sessions_of(matched, settings.session_gap_s)
    heard = sorted({listen.track_id for listen in served})
    rng = np.random.default_rng(settings.seed)

    weights = decayed_weights(served, now, settings.half_life_days)
    played = sorted(weights)
    if played:
        centroids, taste_weights = fit_tastes(
            np.stack([index.vector(t) for t in played]), np.array([weights[t] for t in played]), settings.max_tastes, settings.seed
        )
    else:
        centroids, taste_weights = np.zeros((0, index.dim), np.float32), np.zeros(0, np.float32)

    counts = Counter(listen.track_id for listen in served if not listen.skipped)
    heard_set = set(heard)
    unplayed = [t for t in index.track_ids() if t not in heard_set]
    negatives = list(rng.choice(unplayed, size=min(len(unplayed), NEGATIVES_PER_PLAYED * max(1, len(heard))), replace=False)) if unplayed else []
    examples = heard + [str(t) for t in negatives]
    affinity: AffinityFit | None = None
    if len(heard) >= CV_FOLDS and negatives:
        features = np.stack([affinity_features(index.vector(t), index.meta(t).descriptors) for t in examples])
        affinity = fit_affinity(features, np.array([counts.get(t, 0) for t in examples], np.float64), settings.seed)

    served_sessions = [[x.track_id for x in s if x.track_id in index and not x.skipped] for s in sessions]
    served_sessions = [s for s in served_sessions if len(s) >= 2]
    split = len(served_sessions) - max(1, int(round(len(served_sessions) * HELD_OUT_SESSION_SHARE)))
    transition = np.zeros((0, 0), np.float32)
    bias = np.zeros(0, np.float32)
    continuation: dict[str, object] | None = None
    x, y = transitions(served_sessions[:split], index.vector)
    if len(x) >= MIN_TRANSITIONS and split < len(served_sessions):
        transition, bias = fit_transition(x, y)
        model_hit, steps = hit_at_k(index, served_sessions[split:], lambda p: predict_next(transition, bias, [index.vector(t) for t in p]))
        nn_hit, _ = hit_at_k(index, served_sessions[split:], lambda p: index.vector(p[-1]))
        continuation = {"hitAt10": round(model_hit, 4), "lastTrackNeighbourHitAt10": round(nn_hit, 4), "heldOutSteps": steps}
        # Fitted on every session for serving, once measured on the held-out ones.
        transition, bias = fit_transition(*transitions(served_sessions, index.vector))

    model = UserModel(
        index_version=index.version,
        dim=index.dim,
        space=index.space,
        heard=tuple(heard),
        centroids=centroids,
        taste_weights=taste_weights,
        affinity_ids=tuple(examples) if affinity else (),
        affinity_examples=affinity.features if affinity else np.zeros((0, 0), np.float32),
        affinity_targets=affinity.targets if affinity else np.zeros(0, np.float32),
        affinity_reference=affinity.reference if affinity else np.zeros(0, np.float32),
        transition=transition,
        transition_bias=bias,
    )
    profile: dict[str, object] = {
        "userId": user_id,
        "plays": len(matched),
        "skips": sum(listen.skipped for listen in matched),
        "matchedPlays": len(served),
        "unmatchedPlays": len(matched) - len(served),
        "distinctTracks": len(heard),
        "sessions": len(sessions),
        "firstPlayAt": iso_utc(min(x.ended_at for x in matched)) if matched else None,
        "lastPlayAt": iso_utc(max(x.ended_at for x in matched)) if matched else None,
        "tastes": [{"weight": round(float(w), 4)} for w in taste_weights],
        "models": {
            "trainedAt": iso_utc(now),
            "indexVersion": index.version,
            "affinity": {"spearman": affinity.spearman, "folds": CV_FOLDS, "examples": affinity.examples} if affinity else None,
            "continuation": continuation,
        },
        "settings": {"sessionGapS": settings.session_gap_s, "halfLifeDays": settings.half_life_days},
    }
    return model, profile


def _rematched(listen: Listen, matcher: CatalogueMatcher) -> Listen:
    track_id = matcher.match(listen.spotify_uri, listen.artist, listen.title) or listen.track_id
    return listen if track_id == listen.track_id else replace(listen, track_id=track_id)
