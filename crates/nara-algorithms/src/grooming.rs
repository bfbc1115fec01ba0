//! A grooming-risk score for chat excerpts that citizens or platforms
//! report (alongside the image matcher): the shared text classifier
//! ([`crate::textclass`]) trained on generated Korean and Spanish chats. The
//! factors are the phrases that weighed most; a flagged excerpt waits for a
//! trained official. It scores the text a person reported; it does not
//! watch anyone's conversations.
//!
//! The generator writes grooming chats from the stages child-protection
//! work describes — flattery and rapport, personal questions, secrecy and a
//! move to a private channel, gifts and requests for photographs or a
//! meeting — and ordinary chats (classmates, family, a teacher, friends
//! planning), each step in six phrasings split between training,
//! calibration and evaluation.

use std::sync::LazyLock;

use nara_core::algorithms::{OutOfRange, Output};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::textclass::{Classifier, Labelled, Phrasings, Screen, Script, figures};
use crate::{Evaluation, Model};

pub const CODE: &str = "grooming-risk";
const VERSION: &str = "1.0.0";
pub const THRESHOLD: f64 = 0.5;
const SEED: u64 = 0x0060_0d5a_fe00;

/// The grooming-risk score: the shared text classifier, trained on chats.
pub struct GroomingScore(Classifier);

static MODEL: LazyLock<GroomingScore> = LazyLock::new(|| {
    let (train, calibration, _) = corpus(SEED);
    GroomingScore(Classifier::train(&train, &calibration, SEED))
});

pub fn model() -> &'static dyn Model {
    &*MODEL
}

const SCREEN: Screen = Screen {
    field: "excerpt",
    min_chars: 20,
    max_chars: 10_000,
    threshold: THRESHOLD,
    positive: "grooming_risk",
    negative: "no_grooming_signs",
    phrase_factor: "grooming_phrase",
    no_phrase_factor: "no_grooming_phrases",
};

impl Model for GroomingScore {
    fn code(&self) -> &'static str {
        CODE
    }
    fn version(&self) -> &'static str {
        VERSION
    }
    fn artefact_sha256(&self) -> String {
        self.0.sha256()
    }
    fn outcomes(&self) -> &'static [&'static str] {
        &["grooming_risk", "no_grooming_signs"]
    }
    fn example(&self) -> serde_json::Value {
        serde_json::json!({"excerpt": "너 진짜 어른스럽다. 몇 살이야? 우리 얘기는 부모님한테 비밀로 하자. 선물 보내줄 테니까 사진 한 장만 보내줘"})
    }
    fn decide(&self, input: &serde_json::Value) -> Result<Output, OutOfRange> {
        SCREEN.decide(&self.0, input)
    }
}

const KO_GROOMING: Script = &[
    &[
        "너 진짜 어른스럽다 또래랑 달라",
        "너처럼 말 잘 통하는 애는 처음이야",
        "사진 보니까 정말 예쁘더라",
        "너는 특별해 다른 애들이랑 달라",
        "오빠가 너 제일 잘 이해해",
        "너랑 얘기하면 시간 가는 줄 모르겠어",
    ],
    &[
        "몇 살이야 학교는 어디 다녀",
        "집에 혼자 있는 시간 많아",
        "부모님은 몇 시에 들어오셔",
        "방에 혼자 있어 지금",
        "남자친구 있어 키스해 봤어",
        "엄마 아빠가 폰 검사해",
    ],
    &[
        "우리 얘기는 부모님한테 비밀로 하자",
        "이 대화는 지우고 다른 앱으로 와",
        "아무한테도 말하지 마 우리만 아는 거야",
        "선생님한테 얘기하면 안 돼",
        "비밀 채팅방 만들었어 거기로 와",
        "대화 기록 남기지 말고 이 번호로 연락해",
    ],
    &[
        "선물 보내줄 테니까 사진 한 장만 보내줘",
        "기프티콘 줄게 대신 셀카 보내",
        "주말에 몰래 만나자 데리러 갈게",
        "게임 아이템 사줄 테니까 영상통화 하자",
        "용돈 줄게 옷 갈아입은 사진 보내줘",
        "만나면 맛있는 거 사줄게 부모님 몰래 나와",
    ],
];

const KO_ORDINARY: &[Script] = &[
    &[
        &[
            "내일 수학 숙제 몇 쪽까지야",
            "과학 수행평가 언제 내",
            "영어 단어 시험 범위 알아",
            "국어 책 학교에 두고 왔어",
            "체육복 내일 가져가야 돼",
            "미술 준비물 뭐였지",
        ],
        &[
            "삼십 쪽까지래 같이 하자",
            "다음 주 화요일이래",
            "삼 단원부터 오 단원까지",
            "내 거 사진 찍어서 보내줄게",
            "응 내일 체육 있어",
            "색연필이랑 도화지",
        ],
    ],
    &[
        &[
            "엄마 나 학원 끝났어",
            "아빠 오늘 저녁 뭐 먹어",
            "할머니 생신 선물 뭐 사지",
            "누나 충전기 어디 있어",
            "엄마 친구 집에서 숙제하고 갈게",
            "아빠 나 데리러 올 수 있어",
        ],
        &[
            "조심해서 와 도착하면 연락해",
            "김치찌개 해놨어",
            "같이 꽃 사러 가자",
            "거실 서랍에 있어",
            "여섯 시까지는 들어와",
            "응 학교 앞에서 기다려",
        ],
    ],
    &[
        &[
            "선생님 내일 현장체험학습 몇 시까지 모여요",
            "담임선생님 알림장 확인 부탁드립니다",
            "방과후 수업 신청은 금요일까지입니다",
            "내일은 우천 시 실내 체육입니다",
            "학부모 상담 주간 안내드립니다",
            "도서관 책 반납일이 지났어요",
        ],
        &[
            "여덟 시 반까지 정문으로 오세요",
            "확인했습니다 감사합니다",
            "신청서는 가정통신문에 있어요",
            "실내화 꼭 챙기세요",
            "시간은 앱에서 고르시면 됩니다",
            "내일 가져갈게요",
        ],
    ],
    &[
        &[
            "주말에 다 같이 영화 보러 갈래",
            "오늘 게임 몇 시에 들어와",
            "생일 파티 토요일에 한대",
            "피시방 말고 도서관 가자",
            "축구 시합 몇 대 몇이었어",
            "새로 나온 노래 들어봤어",
        ],
        &[
            "좋아 엄마한테 물어볼게",
            "저녁 먹고 여덟 시쯤",
            "선물 뭐 살지 같이 정하자",
            "그래 두 시에 만나",
            "삼 대 이로 이겼어",
            "응 완전 좋더라",
        ],
    ],
];

const ES_GROOMING: Script = &[
    &[
        "Eres muy madura para tu edad",
        "Nunca había hablado con alguien tan especial",
        "Vi tus fotos eres guapísima",
        "Tú no eres como los demás chicos",
        "Yo te entiendo mejor que nadie",
        "Contigo el tiempo se me pasa volando",
    ],
    &[
        "Cuántos años tienes y a qué colegio vas",
        "Pasas mucho tiempo sola en casa",
        "A qué hora vuelven tus padres",
        "Estás sola en tu cuarto ahora",
        "Tienes novio ya has besado a alguien",
        "Tus padres te revisan el móvil",
    ],
    &[
        "Esto que hablamos es un secreto no se lo digas a tus padres",
        "Borra este chat y escríbeme por otra aplicación",
        "No se lo cuentes a nadie es solo nuestro",
        "A tu profesora no le digas nada",
        "Hice un grupo secreto ven allí",
        "No guardes los mensajes escríbeme a este número",
    ],
    &[
        "Te mando un regalo si me envías una foto",
        "Te doy una tarjeta regalo a cambio de un selfie",
        "Veámonos el sábado sin que se enteren paso a buscarte",
        "Te compro monedas del juego si hacemos videollamada",
        "Te doy dinero si me mandas una foto cambiándote",
        "Si quedamos te invito a comer pero no se lo digas a tus padres",
    ],
];

const ES_ORDINARY: &[Script] = &[
    &[
        &[
            "Hasta qué página son los deberes de mates",
            "Cuándo hay que entregar el trabajo de ciencias",
            "Qué entra en el examen de inglés",
            "Me dejé el libro de lengua en el cole",
            "Mañana hay que llevar el chándal",
            "Qué material pedían para plástica",
        ],
        &[
            "Hasta la treinta los hacemos juntos",
            "El martes que viene",
            "Del tema tres al cinco",
            "Te mando foto de los míos",
            "Sí mañana hay gimnasia",
            "Lápices de colores y cartulina",
        ],
    ],
    &[
        &[
            "Mamá ya salí de la academia",
            "Papá qué hay de cenar",
            "Qué le regalamos a la abuela",
            "Dónde está el cargador",
            "Mamá hago los deberes en casa de Lucía",
            "Papá me puedes recoger",
        ],
        &[
            "Ve con cuidado y avisa al llegar",
            "Hice lentejas",
            "Vamos juntos a comprar flores",
            "En el cajón del salón",
            "Vuelve antes de las seis",
            "Sí espérame en la puerta del cole",
        ],
    ],
    &[
        &[
            "Profe a qué hora quedamos mañana para la excursión",
            "Recuerden revisar la agenda escolar",
            "La inscripción a las extraescolares acaba el viernes",
            "Si llueve mañana hay educación física en el gimnasio",
            "Les informamos de la semana de tutorías",
            "Tienes un libro de la biblioteca pendiente",
        ],
        &[
            "A las ocho y media en la puerta principal",
            "Recibido gracias",
            "El formulario está en la circular",
            "No olviden las zapatillas",
            "Elijan la hora en la aplicación",
            "Mañana lo devuelvo",
        ],
    ],
    &[
        &[
            "Vamos todos al cine el finde",
            "A qué hora te conectas al juego",
            "El cumple es el sábado",
            "Mejor vamos a la biblioteca",
            "Cómo quedó el partido",
            "Escuchaste la canción nueva",
        ],
        &[
            "Vale le pregunto a mi madre",
            "Después de cenar sobre las ocho",
            "Elegimos el regalo juntos",
            "Vale a las dos",
            "Ganamos tres a dos",
            "Sí me encantó",
        ],
    ],
];

/// One chat from a script: a phrasing of each step.
fn chat(script: Script, phrasings: Phrasings, rng: &mut ChaCha8Rng) -> String {
    script
        .iter()
        .map(|pool| phrasings.pick(pool, rng))
        .collect::<Vec<_>>()
        .join(". ")
}

/// The generated corpus: training, calibration and (unseen phrasings)
/// evaluation chats, in Korean and Spanish, half of them grooming.
pub fn corpus(seed: u64) -> (Vec<Labelled>, Vec<Labelled>, Vec<Labelled>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut make = |phrasings: Phrasings, per_language: usize| {
        let mut chats = Vec::new();
        for (grooming, ordinary, language) in [
            (KO_GROOMING, KO_ORDINARY, "ko"),
            (ES_GROOMING, ES_ORDINARY, "es"),
        ] {
            for i in 0..per_language {
                let positive = i % 2 == 0;
                // Ordinary chats run two conversations together, so that
                // length alone tells nothing.
                let text = if positive {
                    chat(grooming, phrasings, &mut rng)
                } else {
                    let first = ordinary[rng.random_range(0..ordinary.len())];
                    let second = ordinary[rng.random_range(0..ordinary.len())];
                    format!(
                        "{}. {}",
                        chat(first, phrasings, &mut rng),
                        chat(second, phrasings, &mut rng)
                    )
                };
                chats.push(Labelled {
                    text,
                    positive,
                    language,
                });
            }
        }
        chats
    };
    let train = make(Phrasings::Training, 800);
    let calibration = make(Phrasings::Calibration, 200);
    let evaluation = make(Phrasings::Evaluation, 400);
    (train, calibration, evaluation)
}

/// Trains from the generator and measures on phrasings never trained on.
pub fn evaluate() -> Evaluation {
    let (train, calibration, evaluation) = corpus(SEED);
    let model = Classifier::train(&train, &calibration, SEED);
    Evaluation {
        model: CODE,
        version: VERSION,
        setting: format!(
            "{} generated chats trained, {} calibrated, {} with phrasings never trained on (Korean and Spanish, half grooming)",
            train.len(),
            calibration.len(),
            evaluation.len()
        ),
        figures: figures(
            &model,
            &evaluation,
            THRESHOLD,
            "f1_unseen_paraphrases",
            "false_positive_rate_ordinary",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_grooming_and_not_homework() {
        let out = model()
            .decide(&model().example())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.flagged, "{out:?}");
        let homework = model()
            .decide(&serde_json::json!({"excerpt": "내일 수학 숙제 몇 쪽까지야. 삼십 쪽까지래 같이 하자"}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!homework.flagged, "{homework:?}");
        assert!(
            model()
                .decide(&serde_json::json!({"excerpt": "hi"}))
                .is_err()
        );
    }
}
