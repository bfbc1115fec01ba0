//! What nara's text classifiers share: texts read as hashed character
//! n-grams (2–4, within and across word boundaries), a logistic regression
//! trained by stochastic gradient descent, Platt's calibration on texts not
//! trained on, the phrases that weighed most as the factors; generated
//! corpora from phrase pools whose phrasings are split between training,
//! calibration and evaluation; and the evaluation's figures. The
//! voice-phishing screen and the grooming-risk score are built on it.

use nara_core::algorithms::{Factor, OutOfRange, Output};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use unicode_normalization::UnicodeNormalization;

use crate::{round, sha256_hex};

/// Hashed feature space.
const BUCKETS: usize = 1 << 18;
const EPOCHS: usize = 12;

/// A labelled text of a generated corpus.
#[derive(Debug, Clone)]
pub struct Labelled {
    pub text: String,
    /// Of the class the model looks for (a scam, grooming).
    pub positive: bool,
    pub language: &'static str,
}

/// The trained classifier: weights, bias and Platt's calibration.
pub struct Classifier {
    weights: Vec<f32>,
    bias: f32,
    platt_a: f64,
    platt_b: f64,
    /// SHA-256 of the artefact, computed once after training.
    sha256: String,
}

/// Lower-cased NFKC text with digits as `0` and whitespace collapsed: the
/// form every n-gram is read from.
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = true;
    for c in text.nfkc().flat_map(char::to_lowercase) {
        if c.is_whitespace() || (c.is_ascii_punctuation() && c != '%') {
            if !space {
                out.push(' ');
                space = true;
            }
        } else {
            out.push(if c.is_numeric() { '0' } else { c });
            space = false;
        }
    }
    out.trim_end().to_owned()
}

fn fnv(bytes: impl Iterator<Item = char>) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for c in bytes {
        h ^= u64::from(c);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h as usize) & (BUCKETS - 1)
}

/// The text's features: each n-gram's bucket with the character span it
/// covers, weighted so the vector has unit length.
fn features(text: &str) -> (Vec<char>, Vec<(usize, usize, usize)>, f32) {
    let chars: Vec<char> = std::iter::once(' ')
        .chain(normalise(text).chars())
        .chain(std::iter::once(' '))
        .collect();
    let mut grams = Vec::new();
    for n in 2..=4 {
        for start in 0..chars.len().saturating_sub(n - 1) {
            let gram = &chars[start..start + n];
            // n-grams that are only spaces say nothing.
            if gram.iter().all(|c| *c == ' ') {
                continue;
            }
            grams.push((
                fnv(gram.iter().copied().chain([char::from(n as u8)])),
                start,
                start + n,
            ));
        }
    }
    let norm = if grams.is_empty() {
        1.0
    } else {
        1.0 / (grams.len() as f32).sqrt()
    };
    (chars, grams, norm)
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl Classifier {
    fn logit(&self, grams: &[(usize, usize, usize)], norm: f32) -> f64 {
        f64::from(self.bias + grams.iter().map(|(b, _, _)| self.weights[*b]).sum::<f32>() * norm)
    }

    /// Trains on `train` (shuffled by `seed`) and calibrates on `calibration`.
    pub fn train(train: &[Labelled], calibration: &[Labelled], seed: u64) -> Classifier {
        let mut weights = vec![0f32; BUCKETS];
        let mut bias = 0f32;
        let prepared: Vec<(Vec<usize>, f32, f32)> = train
            .iter()
            .map(|c| {
                let (_, grams, norm) = features(&c.text);
                (
                    grams.into_iter().map(|(b, _, _)| b).collect(),
                    norm,
                    if c.positive { 1.0 } else { 0.0 },
                )
            })
            .collect();
        let mut order: Vec<usize> = (0..prepared.len()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let lambda = 1e-5f32;
        for epoch in 0..EPOCHS {
            rand::seq::SliceRandom::shuffle(order.as_mut_slice(), &mut rng);
            let rate = 0.5 / (1.0 + epoch as f32);
            for &i in &order {
                let (grams, norm, y) = &prepared[i];
                let z = bias + grams.iter().map(|b| weights[*b]).sum::<f32>() * norm;
                let p = 1.0 / (1.0 + (-z).exp());
                let g = p - y;
                for b in grams {
                    let w = &mut weights[*b];
                    *w -= rate * (g * norm + lambda * *w);
                }
                bias -= rate * g;
            }
        }
        let mut model = Classifier {
            weights,
            bias,
            platt_a: 1.0,
            platt_b: 0.0,
            sha256: String::new(),
        };
        // Platt scaling: fit p = σ(a·z + b) on texts not trained on, by
        // gradient descent on the log loss (two parameters, convex).
        let scored: Vec<(f64, f64)> = calibration
            .iter()
            .map(|c| {
                let (_, grams, norm) = features(&c.text);
                (
                    model.logit(&grams, norm),
                    if c.positive { 1.0 } else { 0.0 },
                )
            })
            .collect();
        let (mut a, mut b) = (1.0f64, 0.0f64);
        for _ in 0..2000 {
            let (mut ga, mut gb) = (0.0, 0.0);
            for (z, y) in &scored {
                let g = sigmoid(a * z + b) - y;
                ga += g * z;
                gb += g;
            }
            let n = scored.len().max(1) as f64;
            a -= 0.5 * ga / n;
            b -= 0.5 * gb / n;
        }
        model.platt_a = a;
        model.platt_b = b;
        model.sha256 = sha256_hex(&model.artefact());
        model
    }

    /// The calibrated probability that a text is of the positive class.
    pub fn probability(&self, text: &str) -> f64 {
        let (_, grams, norm) = features(text);
        sigmoid(self.platt_a * self.logit(&grams, norm) + self.platt_b)
    }

    /// The phrases (runs of words) whose n-grams weighed most towards the
    /// positive class, heaviest first.
    pub fn phrases(&self, text: &str, most: usize) -> Vec<(String, f64)> {
        let (chars, grams, norm) = features(text);
        let mut per_char = vec![0f64; chars.len()];
        for (b, from, to) in &grams {
            let share = f64::from(self.weights[*b] * norm) / (to - from) as f64;
            for c in &mut per_char[*from..*to] {
                *c += share;
            }
        }
        // Words and their weight.
        let mut words: Vec<(String, f64)> = Vec::new();
        let mut current = (String::new(), 0f64);
        for (c, w) in chars.iter().zip(&per_char) {
            if *c == ' ' {
                if !current.0.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
            } else {
                current.0.push(*c);
                current.1 += w;
            }
        }
        // Two-word phrases read better than single words; keep the best
        // non-overlapping ones.
        let mut candidates: Vec<(usize, f64)> = (0..words.len().saturating_sub(1))
            .map(|i| (i, words[i].1 + words[i + 1].1))
            .filter(|(_, w)| *w > 0.0)
            .collect();
        candidates.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut taken = vec![false; words.len()];
        let mut out = Vec::new();
        for (i, w) in candidates {
            if taken[i] || taken[i + 1] {
                continue;
            }
            taken[i] = true;
            taken[i + 1] = true;
            out.push((format!("{} {}", words[i].0, words[i + 1].0), w));
            if out.len() == most {
                break;
            }
        }
        out
    }

    /// SHA-256 of the trained artefact.
    pub fn sha256(&self) -> String {
        self.sha256.clone()
    }

    fn artefact(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(BUCKETS * 4 + 20);
        for w in &self.weights {
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        bytes.extend_from_slice(&self.bias.to_le_bytes());
        bytes.extend_from_slice(&self.platt_a.to_le_bytes());
        bytes.extend_from_slice(&self.platt_b.to_le_bytes());
        bytes
    }
}

/// Korean or Spanish: most of the letters Hangul or Latin.
pub fn readable(text: &str) -> bool {
    let (mut known, mut letters) = (0usize, 0usize);
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        letters += 1;
        if ('\u{ac00}'..='\u{d7a3}').contains(&c)
            || ('\u{1100}'..='\u{11ff}').contains(&c)
            || ('\u{3130}'..='\u{318f}').contains(&c)
            || c.is_ascii_alphabetic()
            || "áéíóúüñÁÉÍÓÚÜÑ".contains(c)
        {
            known += 1;
        }
    }
    letters > 0 && known * 5 >= letters * 4
}

/// A script: steps, each a pool of phrasings of the same thing.
pub type Script = &'static [&'static [&'static str]];

/// Which phrasings of each step a text is made from: the first four train,
/// the fifth calibrates, the sixth evaluates — so calibration and evaluation
/// both see phrasings never trained on, as texts in service will be.
#[derive(Clone, Copy)]
pub enum Phrasings {
    Training,
    Calibration,
    Evaluation,
}

impl Phrasings {
    /// A phrasing of `pool` from this split.
    pub fn pick(self, pool: &[&'static str], rng: &mut ChaCha8Rng) -> &'static str {
        let range = match self {
            Phrasings::Training => 0..4,
            Phrasings::Calibration => 4..5,
            Phrasings::Evaluation => 5..6,
        };
        pool[rng.random_range(range).min(pool.len().saturating_sub(1))]
    }
}

/// What a screen refuses and reports: its input field, its range, the
/// threshold, and the keys of its outcomes and factors.
pub struct Screen {
    pub field: &'static str,
    pub min_chars: usize,
    pub max_chars: usize,
    pub threshold: f64,
    pub positive: &'static str,
    pub negative: &'static str,
    pub phrase_factor: &'static str,
    pub no_phrase_factor: &'static str,
}

impl Screen {
    /// The classifier's output for `input[field]`, or why it is out of range.
    pub fn decide(
        &self,
        model: &Classifier,
        input: &serde_json::Value,
    ) -> Result<Output, OutOfRange> {
        let text = input
            .get(self.field)
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| OutOfRange::new(self.field, "must be the text"))?;
        let chars = text.chars().count();
        if !(self.min_chars..=self.max_chars).contains(&chars) {
            return Err(OutOfRange::new(
                self.field,
                format!(
                    "must be {} to {} characters (this one has {chars})",
                    self.min_chars, self.max_chars
                ),
            ));
        }
        if !readable(text) {
            return Err(OutOfRange::new(
                self.field,
                "the model reads Korean and Spanish; this text is mostly in another script",
            ));
        }
        let score = model.probability(text);
        let flagged = score >= self.threshold;
        let factors = if flagged {
            model
                .phrases(text, 3)
                .into_iter()
                .map(|(p, w)| Factor {
                    key: self.phrase_factor.into(),
                    args: vec![p],
                    weight: round(w, 3),
                })
                .collect()
        } else {
            vec![Factor {
                key: self.no_phrase_factor.into(),
                args: vec![],
                weight: 0.0,
            }]
        };
        Ok(Output {
            score: round(score, 4),
            threshold: self.threshold,
            outcome: if flagged {
                self.positive
            } else {
                self.negative
            }
            .into(),
            flagged,
            factors,
        })
    }
}

/// F1 on the positive class, the false-positive rate and the Brier score of
/// `model` on `evaluation`, overall and per language; the F1's name says
/// what was held out.
pub fn figures(
    model: &Classifier,
    evaluation: &[Labelled],
    threshold: f64,
    f1_name: &str,
    fpr_name: &str,
) -> Vec<(Option<String>, String, f64)> {
    let mut figures = Vec::new();
    for language in [None, Some("ko"), Some("es")] {
        let set: Vec<&Labelled> = evaluation
            .iter()
            .filter(|c| language.is_none_or(|l| c.language == l))
            .collect();
        let (mut tp, mut fp, mut fneg, mut tn) = (0.0, 0.0, 0.0, 0.0);
        let mut brier = 0.0;
        for t in &set {
            let p = model.probability(&t.text);
            let y = if t.positive { 1.0 } else { 0.0 };
            brier += (p - y) * (p - y);
            match (p >= threshold, t.positive) {
                (true, true) => tp += 1.0,
                (true, false) => fp += 1.0,
                (false, true) => fneg += 1.0,
                (false, false) => tn += 1.0,
            }
        }
        let precision = tp / f64::max(tp + fp, 1.0);
        let recall = tp / f64::max(tp + fneg, 1.0);
        let f1 = 2.0 * precision * recall / (precision + recall).max(f64::MIN_POSITIVE);
        let group = language.map(str::to_owned);
        figures.push((group.clone(), f1_name.to_owned(), round(f1, 3)));
        figures.push((
            group.clone(),
            fpr_name.to_owned(),
            round(fp / f64::max(fp + tn, 1.0), 3),
        ));
        figures.push((
            group,
            "brier_score".into(),
            round(brier / set.len().max(1) as f64, 4),
        ));
    }
    figures
}
