"""The demo catalogue: public-domain scores rendered to labelled 30 s clips.

Everything comes from PyPI packages, nothing is fetched at run time: the scores
from the corpus bundled with music21, the General MIDI soundfont that ships
inside pretty_midi (TimGM6mb.sf2), and the tinysoundfont synthesizer. Each clip
is one excerpt of one piece played on one instrument, so the catalogue carries
its own ground truth (composer, piece, instrument) for judging recommendations.

:mod:`demo.spec` says which clips exist, :mod:`demo.render` turns one clip into
audio, :mod:`demo.catalog` writes the tagged mp3 files plus catalogue.json and
reuses earlier builds; ``python -m demo build`` is the command line.
"""
