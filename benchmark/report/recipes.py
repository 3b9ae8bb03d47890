"""Which model keys fill which paper table and claim: the report's only model keys.

The paper's tables compare named models (Table 1: ColloPop-Artist, MAP-2T(imputed_p),
MAP-2T(full) against Popularity), so the report must name keys somewhere; this module
is that one place. Display names and families come from the specs (``models/*.yaml``)
via the run records, never from here, and a key listed here without runs is reported
as "not available" inside the table, so a renamed or removed spec cannot break the
report silently.
"""

from __future__ import annotations

REFERENCE = "popularity"  # every relative number is against this key

# Table 1: relative improvement over Popularity at K = 3, 5.
TABLE1 = {"linked": ["collopop-artist", "map2t-imputed_p", "map2t-full"], "real": ["collopop-artist", "map2t-music"]}
# Tables 2 and 3 (paper Figs. 3, 4): (model, the references it is compared with).
TABLE2 = ("map2t-full", [REFERENCE, "collopop-artist"])
TABLE3 = ("map2t-music_podcast", [REFERENCE, "collopop-podcast"])
# Table 4: input-modality chains, each step adds one modality to the previous one.
CHAINS = {"music": ["map2t-music", "map2t-music-book", "map2t-music-book-podcast"],
          "podcast": ["map2t-podcast", "map2t-podcast-book", "map2t-music-book-podcast"]}
CHAIN_PREFIX = "map2t-"  # stripped from keys to name a chain's steps
# Table 4b: the multi-task model's ablations against the full MTL (the Spotify summary's claim:
# ancillary objectives and feature groups carry cold-start performance). The per-modality
# rows exist only where the scenario has a second source modality.
MTL_FULL = "mtl"
MTL_ABLATIONS = {"all": ["mtl-noaux"], "two_sources": ["mtl-music", "mtl-podcast"]}
# Table 5: (concatenation, gated) fusion.
FUSION = ("map2t-concat", "map2t-full")

# The findings table's claims.
ORDERING_TOP = {"linked": "map2t-full", "real": "map2t-music"}  # ordering: top > ColloPop-Artist > Popularity
ORDERING_MIDDLE = "collopop-artist"
PODCAST_STEP = ("map2t-music-book-podcast", "map2t-music-book")  # adding the second modality
IMPUTED = "map2t-imputed_p"
POSITIVE_CONTROL = ("collopop-artist", "userknn")  # source-history models the rho = 1 control must lift (DESIGN 3)
