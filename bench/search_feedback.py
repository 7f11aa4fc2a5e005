#!/usr/bin/env python3
"""How should positive and negative examples be combined? A relevance-feedback simulation
on the model's vectors of the LC25000 tiles, behind the scoring documented in src/search.rs.

For 600 random query tiles: rank by cosine (same augmentation group excluded); among the
top 20 take up to 3 right-class tiles as positives and up to 3 wrong-class tiles as
negatives (queries without a wrong-class tile there are skipped); re-rank with each
formula and report P@10 of the remaining ranking (feedback tiles excluded).

    tessera eval            # writes the embedding cache used here
    python3 bench/search_feedback.py target/eval-cache/lc25000-<sha>-112px-<list>.npy

Needs numpy. Rows of the .npy follow ../shared/data/lc25000-lung.csv.
"""
# Relevance-feedback simulation on real model embeddings (LC25000, 112 px, block-5 patch mean):
# which way of combining positives and negatives ranks best?
import numpy as np, csv, sys
X = np.load(sys.argv[1]).astype(np.float32); X /= np.linalg.norm(X, axis=1, keepdims=True)
rows = list(csv.DictReader(open('/work/shared/data/lc25000-lung.csv')))
assert len(rows) == len(X), (len(rows), X.shape)
lab = np.array([r['label'] for r in rows]); grp = np.array([r['group'] for r in rows])
S = X @ X.T
rng = np.random.default_rng(0)
qs = rng.choice(len(X), 600, replace=False)
def p_at(scores, q, exclude, k=10):
    s = scores.copy(); s[grp == grp[q]] = -9; s[list(exclude)] = -9
    top = np.argsort(-s)[:k]; return np.mean(lab[top] == lab[q])
res = {}
for q in qs:
    s0 = S[q].copy(); s0[grp == grp[q]] = -9
    top20 = np.argsort(-s0)[:20]
    pos = [i for i in top20 if lab[i] == lab[q]][:3]; neg = [i for i in top20 if lab[i] != lab[q]][:3]
    if not neg: continue
    ex = set(pos) | set(neg)
    P = [q] + pos
    res.setdefault('no feedback', []).append(p_at(S[q], q, ex))
    for beta in [0.25, 0.4, 0.5, 0.6, 0.75]:
        meanP = S[P].mean(0); maxP = S[P].max(0); meanN = S[neg].mean(0); maxN = S[neg].max(0)
        res.setdefault(f'mean pos - {beta} mean neg (Rocchio)', []).append(p_at(meanP - beta*meanN, q, ex))
        res.setdefault(f'mean pos - {beta} max neg', []).append(p_at(meanP - beta*maxN, q, ex))
        res.setdefault(f'max pos - {beta} max neg', []).append(p_at(maxP - beta*maxN, q, ex))
    res.setdefault('mean pos only', []).append(p_at(S[P].mean(0), q, ex))
print(f"{len(res['no feedback'])} queries with a wrong-class tile in their top 20 (same group excluded); P@10 of the remaining ranking:")
for k, v in sorted(res.items(), key=lambda kv: -np.mean(kv[1])): print(f"  {np.mean(v):.4f}  {k}")
# Same, only queries with at least 2 negatives (where mean and max differ).
res2 = {}
for q in qs:
    s0 = S[q].copy(); s0[grp == grp[q]] = -9
    top20 = np.argsort(-s0)[:20]
    pos = [i for i in top20 if lab[i] == lab[q]][:3]; neg = [i for i in top20 if lab[i] != lab[q]][:3]
    if len(neg) < 2: continue
    ex = set(pos) | set(neg); P = [q] + pos
    for beta in [0.4, 0.5, 0.6]:
        res2.setdefault(f'mean pos - {beta} mean neg (Rocchio)', []).append(p_at(S[P].mean(0) - beta*S[neg].mean(0), q, ex))
        res2.setdefault(f'mean pos - {beta} max neg', []).append(p_at(S[P].mean(0) - beta*S[neg].max(0), q, ex))
print(f"{len(next(iter(res2.values())))} queries with 2-3 negatives:")
for k, v in sorted(res2.items(), key=lambda kv: -np.mean(kv[1])): print(f"  {np.mean(v):.4f}  {k}")
