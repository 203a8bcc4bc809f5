#!/usr/bin/env bash
# System packages textgym's rewards, tasks and tests need (idempotent): WordNet for the METEOR reward
# (textgym.rewards.wordnet builds NLTK's corpus from /usr/share/wordnet on first use, no download), the
# German-English dictionary whose example sentences TextGen-Translate-v0 uses (/usr/share/trans/de-en), and
# chromium with its WebDriver for the labelling app's browser test (tests/test_feedback_browser.py).
set -euo pipefail
if [ ! -f /usr/share/wordnet/data.noun ] || [ ! -f /usr/share/wordnet/index.sense ] || [ ! -f /usr/share/trans/de-en ] \
    || ! command -v chromium > /dev/null || ! command -v chromedriver > /dev/null; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends \
        wordnet-base wordnet-sense-index trans-de-en chromium chromium-driver
fi
