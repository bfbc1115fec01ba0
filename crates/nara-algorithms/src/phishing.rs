//! Voice-phishing identification: the shared text classifier
//! ([`crate::textclass`]: hashed character n-grams, logistic regression,
//! Platt calibration) over a call transcript, Korean or Spanish. The factors are the phrases whose n-grams weighed most towards a
//! scam. It screens the phone-call phishing reports citizens submit.
//!
//! The generator writes calls from sentence pools per script (prosecutor
//! impersonation, loan fraud, a relative in trouble, a card fraud alert) and
//! ordinary calls (deliveries, appointments, family, work, and real banks'
//! calls that name accounts and loans). Each step has six phrasings: four
//! train, the fifth calibrates and the sixth evaluates, so the evaluation's
//! paraphrases are unseen and the calibration reflects unseen ones too.

use std::sync::LazyLock;

use nara_core::algorithms::{OutOfRange, Output};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::textclass::{Classifier, Labelled, Phrasings, Screen, Script, figures};
use crate::{Evaluation, Model};

pub const CODE: &str = "voice-phishing";
const VERSION: &str = "1.0.0";
/// The longest transcript read (characters).
pub const MAX_CHARS: usize = 20_000;
/// Calibrated probability at or above which a call is flagged.
pub const THRESHOLD: f64 = 0.5;
const SEED: u64 = 0x005e_ed0f_ca11;

/// The voice-phishing screen: the shared text classifier, trained on calls.
pub struct ScamScreen(Classifier);

static MODEL: LazyLock<ScamScreen> = LazyLock::new(|| {
    let (train, calibration, _) = corpus(SEED);
    ScamScreen(Classifier::train(&train, &calibration, SEED))
});

pub fn model() -> &'static dyn Model {
    &*MODEL
}

const SCREEN: Screen = Screen {
    field: "transcript",
    min_chars: 20,
    max_chars: MAX_CHARS,
    threshold: THRESHOLD,
    positive: "scam_likely",
    negative: "ordinary_call",
    phrase_factor: "scam_phrase",
    no_phrase_factor: "no_scam_phrases",
};

impl Model for ScamScreen {
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
        &["scam_likely", "ordinary_call"]
    }
    fn example(&self) -> serde_json::Value {
        serde_json::json!({"transcript": "여보세요. 서울중앙지검 수사관입니다. 고객님 명의 계좌가 범죄에 연루되어 있습니다. 안전계좌로 이체하셔야 합니다"})
    }
    fn decide(&self, input: &serde_json::Value) -> Result<Output, OutOfRange> {
        SCREEN.decide(&self.0, input)
    }
}

/// A generated call (`positive`: a scam).
pub type Call = Labelled;

/// Sentence pools: each a list of phrasings of one step of a script.
const KO_SCAMS: &[Script] = &[
    // Prosecutor impersonation.
    &[
        &[
            "안녕하세요 서울중앙지검 {name} 수사관입니다",
            "여기는 서울중앙지방검찰청 첨단범죄수사팀 {name} 검사입니다",
            "금융범죄수사대 {name} 수사관인데요 본인 확인 좀 하겠습니다",
            "검찰청에서 연락드렸습니다 저는 {name} 계장입니다",
            "대검찰청 사이버수사과 {name} 수사관이라고 합니다",
            "지방경찰청 지능범죄수사대의 {name} 형사입니다",
        ],
        &[
            "고객님 명의로 된 대포통장이 범죄에 이용되었습니다",
            "본인 명의 계좌가 자금세탁 사건에 연루되어 있습니다",
            "명의가 도용되어 불법 계좌가 개설된 것이 확인됐습니다",
            "귀하의 통장이 사기 사건 피해금 입금에 사용되었습니다",
            "선생님 이름으로 만들어진 계좌에서 범죄 수익이 오갔어요",
            "당신 계좌가 마약 조직 송금에 쓰인 정황이 나왔습니다",
        ],
        &[
            "자산 보호를 위해 안전계좌로 {amount}만원을 이체하셔야 합니다",
            "수사가 끝날 때까지 예금을 국가 안전계좌로 옮겨 두세요",
            "피해를 막으려면 지금 바로 돈을 인출해서 저희 직원에게 전달하세요",
            "확인 절차로 잔액 전부를 지정 계좌에 송금해 주셔야 합니다",
            "결백을 증명하려면 {amount}만원을 보호관찰 계좌로 보내세요",
            "예금이 동결되기 전에 현금으로 찾아 금융감독원 직원에게 맡기세요",
        ],
        &[
            "이 통화 내용은 수사 기밀이니 가족에게도 말하면 안 됩니다",
            "전화를 끊으면 공무집행방해로 구속될 수 있습니다",
            "은행 직원이 물어보면 개인 용도라고만 말씀하세요",
            "지금 조용한 곳으로 이동해서 혼자 통화하셔야 합니다",
            "다른 사람에게 알리면 공범으로 처벌받게 됩니다",
            "오늘 안에 처리하지 않으면 체포영장이 발부됩니다",
        ],
    ],
    // Loan fraud.
    &[
        &[
            "{bank} 대출상담팀 {name} 대리입니다",
            "안녕하세요 {bank} 서민금융지원센터입니다",
            "정부지원 저금리 대환대출 안내드리려고 전화드렸어요",
            "고객님께 특별 승인된 저금리 대출 상품이 있습니다",
            "{bank}에서 햇살론 대상자로 선정되셨습니다",
            "채무 통합 저금리 전환 대상이라 연락드립니다",
        ],
        &[
            "연 {rate}% 금리로 {amount}만원까지 바로 가능합니다",
            "기존 대출을 갚으시면 신용등급이 올라가서 승인이 됩니다",
            "기존 고금리 대출을 먼저 상환하셔야 대환이 진행됩니다",
            "신용점수를 올리려면 거래 실적을 먼저 만들어야 해요",
            "보증보험료 {amount}만원을 먼저 입금하시면 바로 실행됩니다",
            "전산 수수료를 선입금해 주셔야 대출금이 나갑니다",
        ],
        &[
            "제가 보내드리는 링크로 앱을 설치해 주세요",
            "상환금은 저희 직원 명의 계좌로 보내 주시면 됩니다",
            "문자로 보낸 주소에서 신분증 사진을 올려 주세요",
            "기존 대출은 다른 은행 앱으로 갚으면 안 되고 저희 계좌로 보내세요",
            "원격 지원 앱을 깔아주시면 제가 대신 처리해 드릴게요",
            "인증번호가 가면 불러 주셔야 심사가 끝납니다",
        ],
    ],
    // A relative in trouble.
    &[
        &[
            "엄마 나야 폰 액정이 깨져서 친구 폰으로 연락해",
            "아빠 나 지금 급한 일이 생겼어",
            "어머니 저예요 휴대폰을 잃어버려서 임시폰으로 전화했어요",
            "엄마 나 핸드폰 고장나서 수리 맡겼어",
            "누나 나 지금 큰일 났어 도와줘",
            "아버지 저 사고가 나서 합의금이 필요해요",
        ],
        &[
            "급하게 {amount}만원만 보내줄 수 있어",
            "문화상품권 {amount}만원어치 사서 핀번호 보내줘",
            "엄마 명의 신분증 사진이랑 카드 번호 좀 보내줘",
            "합의금을 오늘 안에 보내야 해서 그래",
            "이 계좌로 바로 입금해 주면 내일 갚을게",
            "인증번호 하나 갈 건데 그거 불러줘",
        ],
        &[
            "아빠한테는 말하지 말고 지금 바로 해줘",
            "지금 통화가 안 되니까 문자로만 연락해",
            "시간이 없어 빨리 처리해야 돼",
            "이 번호로 원격 앱 깔아야 폰 복구가 된대",
            "다른 사람한테 얘기하지 말고 부탁해",
            "한 시간 안에 안 보내면 큰일 나",
        ],
    ],
    // A card fraud alert.
    &[
        &[
            "{bank} 카드 고객센터입니다 해외 결제가 승인되었습니다",
            "고객님 카드로 {amount}만원이 해외에서 결제 시도되었습니다",
            "명의 도용으로 카드가 발급된 것이 확인됐습니다",
            "비정상 결제가 감지되어 연락드렸습니다",
            "고객님 카드가 부정 사용 의심 거래로 정지되었습니다",
            "금융감독원 소비자보호팀인데 카드 명의 도용 신고가 접수됐어요",
        ],
        &[
            "본인 결제가 아니라면 보안 앱을 설치하셔야 합니다",
            "본인 확인을 위해 카드 번호와 비밀번호를 말씀해 주세요",
            "피해 구제를 위해 문자로 온 링크에서 정보를 입력하세요",
            "취소하려면 지금 보내드리는 주소로 접속하세요",
            "환불 처리를 위해 계좌 비밀번호와 인증번호가 필요합니다",
            "보안 점검을 위해 원격 제어 프로그램을 설치해 주세요",
        ],
    ],
];

const KO_ORDINARY: &[Script] = &[
    &[
        &[
            "안녕하세요 택배 기사입니다 지금 댁에 계신가요",
            "{name}님 택배 왔는데 경비실에 맡겨 둘까요",
            "배송 기사인데요 문 앞에 두고 가도 될까요",
            "택배 배달 왔는데 아무도 안 계셔서 전화드렸어요",
            "오늘 오후에 물건 배송 예정이라 미리 연락드려요",
            "주문하신 상품이 도착해서 연락드렸습니다",
        ],
        &[
            "네 문 앞에 두시면 돼요 감사합니다",
            "경비실에 맡겨 주세요 이따 찾을게요",
            "지금 집에 없어서 내일 받을 수 있을까요",
            "네 곧 내려갈게요",
            "현관 비밀번호는 따로 알려드릴게요 아 그냥 문 앞에 두세요",
            "알겠습니다 수고하세요",
        ],
    ],
    &[
        &[
            "{name}님 내일 오전 진료 예약 확인 전화드렸습니다",
            "병원인데요 검사 결과 나와서 연락드렸어요",
            "치과 예약이 금요일 세 시로 잡혀 있습니다",
            "내일 건강검진 전날에는 금식하셔야 합니다",
            "예약하신 상담 시간이 변경되어 안내드립니다",
            "주민센터인데요 신청하신 서류가 준비되었습니다",
        ],
        &[
            "네 그 시간에 가겠습니다",
            "혹시 오후로 바꿀 수 있을까요",
            "신분증 챙겨서 방문하면 되죠",
            "알겠습니다 내일 뵐게요",
            "주차는 건물 지하에 하면 되나요",
            "고맙습니다 그때 뵙겠습니다",
        ],
    ],
    &[
        &[
            "엄마 나 오늘 저녁 먹고 들어갈게",
            "아빠 주말에 할머니 댁 몇 시에 출발해요",
            "여보 퇴근길에 우유 좀 사 와",
            "언니 이번 주 토요일에 시간 돼",
            "친구야 오랜만이다 잘 지냈어",
            "아들 오늘 학원 끝나고 바로 와",
        ],
        &[
            "응 너무 늦지 않게 들어와",
            "열 시쯤 출발하자 차 막히니까",
            "알았어 다른 거 필요한 건 없어",
            "좋아 그럼 점심 같이 먹자",
            "다음 주에 한번 보자 연락할게",
            "비 온다니까 우산 챙겨",
        ],
    ],
    &[
        &[
            "{bank} 고객센터입니다 요청하신 카드 재발급이 완료되었습니다",
            "{bank} 지점인데요 예약하신 대출 상담 시간을 확인하려고 전화드렸어요",
            "적금 만기가 다가와서 안내드립니다 지점에 방문하시면 됩니다",
            "고객님 계좌 개설 서류 중 빠진 게 있어 연락드렸습니다",
            "{bank}입니다 비밀번호나 인증번호는 절대 묻지 않으니 안심하세요",
            "주택담보대출 금리가 변경되어 다음 달부터 적용됩니다",
        ],
        &[
            "새 카드는 등록하신 주소로 우편 발송됩니다",
            "지점에 신분증 가지고 방문해 주시면 됩니다",
            "자세한 내용은 앱 공지사항에서 확인하실 수 있습니다",
            "궁금한 점은 대표번호로 문의해 주세요",
            "다음 방문 때 서명만 해 주시면 됩니다",
            "네 확인했습니다 감사합니다",
        ],
    ],
    &[
        &[
            "{name} 과장님 오늘 회의 두 시로 미뤄졌습니다",
            "팀장님 보고서 초안 메일로 보냈습니다",
            "거래처에서 견적서 다시 보내 달라고 하네요",
            "내일 출장 기차표 예매해 두었습니다",
            "이번 분기 실적 자료 정리가 끝났어요",
            "신입 교육 일정이 다음 주로 잡혔습니다",
        ],
        &[
            "알겠습니다 회의실은 그대로죠",
            "확인하고 피드백 드릴게요",
            "오후에 다시 보내드리겠습니다",
            "고마워요 출발 시간 문자로 보내 줘요",
            "수고했어요 내일 같이 봅시다",
            "네 참석자 명단 공유할게요",
        ],
    ],
];

const ES_SCAMS: &[Script] = &[
    &[
        &[
            "Buenos días le llama {name} de la Fiscalía de delitos económicos",
            "Le habla el inspector {name} de la unidad de delitos financieros",
            "Soy {name} agente de la policía judicial necesito verificar su identidad",
            "Le llamamos del juzgado por un asunto urgente a su nombre",
            "Aquí la fiscalía anticorrupción le habla el fiscal {name}",
            "Le contacta la brigada de investigación tecnológica agente {name}",
        ],
        &[
            "Su cuenta bancaria ha sido utilizada para blanqueo de capitales",
            "Hemos detectado una cuenta a su nombre vinculada a una red criminal",
            "Su identidad fue suplantada para abrir cuentas fraudulentas",
            "Su cuenta aparece en una investigación por estafa",
            "Con sus datos se han hecho transferencias de dinero ilegal",
            "Su nombre figura en un caso de tráfico de drogas",
        ],
        &[
            "Para proteger su dinero debe transferir {amount} euros a una cuenta segura",
            "Mientras dure la investigación transfiera sus ahorros a la cuenta del Estado",
            "Retire el efectivo hoy y entrégueselo a nuestro agente",
            "Debe enviar todo el saldo a la cuenta que le indicamos para verificarlo",
            "Para demostrar su inocencia deposite {amount} euros en la cuenta de custodia",
            "Saque el dinero antes de que congelen su cuenta y déselo a nuestro funcionario",
        ],
        &[
            "Esta llamada es confidencial no se lo cuente a su familia",
            "Si cuelga será detenido por obstrucción a la justicia",
            "Si el banco le pregunta diga que es para uso personal",
            "Vaya a un lugar tranquilo y hable a solas",
            "Si se lo dice a alguien será tratado como cómplice",
            "Si no lo resuelve hoy se emitirá una orden de arresto",
        ],
    ],
    &[
        &[
            "Le llamo de {bank} departamento de préstamos",
            "Tiene un préstamo preaprobado con interés muy bajo",
            "Le ofrecemos reunificar sus deudas con un préstamo del gobierno",
            "Ha sido seleccionado para un crédito rápido sin aval",
            "Somos de {bank} y tenemos una oferta especial de financiación",
            "Le llamo porque califica para un préstamo al {rate} por ciento",
        ],
        &[
            "Puede recibir hasta {amount} euros hoy mismo",
            "Primero debe pagar sus préstamos anteriores para mejorar su historial",
            "Para activarlo tiene que pagar una comisión de {amount} euros",
            "Necesitamos un pago del seguro por adelantado",
            "Haga un depósito de garantía y el dinero llega en una hora",
            "El gasto de apertura se paga antes de recibir el préstamo",
        ],
        &[
            "Instale la aplicación del enlace que le envío",
            "Haga la transferencia a la cuenta de nuestro gestor",
            "Envíeme una foto de su documento por mensaje",
            "Le llegará un código de verificación dígamelo por favor",
            "Descargue el programa de acceso remoto y yo lo tramito",
            "No pague en su banco páguenos directamente a esta cuenta",
        ],
    ],
    &[
        &[
            "Mamá soy yo se me rompió el móvil te escribo desde otro número",
            "Papá tengo un problema urgente",
            "Hola mamá perdí el teléfono este es mi número nuevo",
            "Abuela soy tu nieto tuve un accidente",
            "Hermano ayúdame estoy en un lío",
            "Mamá estoy en la comisaría necesito ayuda",
        ],
        &[
            "Necesito que me mandes {amount} euros ahora",
            "Compra tarjetas regalo y mándame los códigos",
            "Envíame una foto de tu tarjeta por los dos lados",
            "Tengo que pagar una multa hoy mismo",
            "Hazme una transferencia a esta cuenta y mañana te lo devuelvo",
            "Te va a llegar un código dímelo rápido",
        ],
        &[
            "No le digas nada a papá hazlo ya",
            "No puedo hablar escríbeme solo por mensaje",
            "No hay tiempo tiene que ser ahora",
            "Instala esta aplicación para recuperar mi cuenta",
            "Por favor no se lo cuentes a nadie",
            "Si no lo mandas en una hora me meto en un problema grave",
        ],
    ],
    &[
        &[
            "Le llamamos del servicio de seguridad de {bank} se ha aprobado un cargo en el extranjero",
            "Hemos detectado un cargo de {amount} euros en su tarjeta",
            "Su tarjeta fue duplicada por delincuentes",
            "Detectamos un movimiento sospechoso en su cuenta",
            "Su tarjeta ha sido bloqueada por uso fraudulento",
            "Le llamo del Banco de España por una suplantación de su tarjeta",
        ],
        &[
            "Si no lo reconoce instale nuestra aplicación de seguridad",
            "Para verificar dígame el número de la tarjeta y el PIN",
            "Entre en el enlace del mensaje e introduzca sus datos",
            "Para anularlo acceda a la dirección que le envío",
            "Para el reembolso necesito su clave y el código de verificación",
            "Instale el programa de control remoto para revisar su móvil",
        ],
    ],
];

const ES_ORDINARY: &[Script] = &[
    &[
        &[
            "Hola soy el repartidor está usted en casa",
            "Buenas tengo un paquete para {name} se lo dejo al portero",
            "Le llamo de mensajería puedo dejarlo en la puerta",
            "Vine a entregar un pedido pero no había nadie",
            "Su pedido llega esta tarde le aviso antes",
            "Ha llegado su compra a la tienda puede pasar a recogerla",
        ],
        &[
            "Sí déjelo en la puerta gracias",
            "Déjeselo al portero luego lo recojo",
            "No estoy puede venir mañana",
            "Ahora bajo un momento",
            "Perfecto muchas gracias",
            "Vale paso esta tarde",
        ],
    ],
    &[
        &[
            "Buenos días {name} le llamamos para confirmar su cita de mañana",
            "Le llamo del centro de salud ya tenemos sus resultados",
            "Su cita con el dentista es el viernes a las tres",
            "Recuerde venir en ayunas a la analítica",
            "Hemos cambiado la hora de su consulta",
            "Le llamamos del ayuntamiento su certificado está listo",
        ],
        &[
            "Sí allí estaré",
            "Se podría cambiar a la tarde",
            "Llevo el documento de identidad entonces",
            "Muy bien hasta mañana",
            "Dónde se puede aparcar",
            "Gracias nos vemos",
        ],
    ],
    &[
        &[
            "Mamá hoy ceno fuera",
            "Papá a qué hora salimos el sábado a casa de la abuela",
            "Cariño compra leche al volver",
            "Hola hermana tienes tiempo este fin de semana",
            "Qué tal amigo cuánto tiempo",
            "Hijo ven directo a casa después de clase",
        ],
        &[
            "Vale no vuelvas tarde",
            "Salimos a las diez que hay tráfico",
            "De acuerdo necesitas algo más",
            "Genial comemos juntos",
            "Nos vemos la semana que viene te llamo",
            "Coge el paraguas que va a llover",
        ],
    ],
    &[
        &[
            "Le llamamos de {bank} su nueva tarjeta ya está emitida",
            "Le llamo de su oficina de {bank} para confirmar la cita sobre su hipoteca",
            "Su depósito vence el mes que viene puede pasar por la oficina",
            "Falta un documento para abrir su cuenta",
            "Somos {bank} recuerde que nunca le pediremos claves ni códigos",
            "El tipo de interés de su hipoteca cambia el próximo mes",
        ],
        &[
            "La tarjeta le llegará por correo a su dirección",
            "Pase por la oficina con su documento de identidad",
            "Tiene los detalles en la aplicación",
            "Si tiene dudas llame al número de atención al cliente",
            "En su próxima visita solo tiene que firmar",
            "Muy bien gracias por avisar",
        ],
    ],
    &[
        &[
            "{name} la reunión se ha movido a las dos",
            "Jefe le he enviado el borrador del informe",
            "El cliente pide que le reenviemos el presupuesto",
            "Ya tengo los billetes de tren para el viaje de mañana",
            "He terminado los datos del trimestre",
            "La formación de los nuevos es la semana que viene",
        ],
        &[
            "Entendido la sala es la misma",
            "Lo reviso y te digo",
            "Se lo mando esta tarde",
            "Gracias mándame la hora por mensaje",
            "Buen trabajo nos vemos mañana",
            "Comparto la lista de asistentes",
        ],
    ],
];

const KO_NAMES: &[&str] = &["김민준", "이서연", "박지훈", "최수아", "정우진", "강하은"];
const ES_NAMES: &[&str] = &["García", "Martínez", "López", "Sánchez", "Pérez", "Gómez"];
const KO_BANKS: &[&str] = &["국민은행", "신한은행", "우리은행", "하나은행", "농협"];
const ES_BANKS: &[&str] = &["Banco Central", "Caja Norte", "Banco del Sur", "Caja Rural"];

fn fill(template: &str, rng: &mut ChaCha8Rng, ko: bool) -> String {
    let name = if ko { KO_NAMES } else { ES_NAMES }
        .choose(rng)
        .copied()
        .unwrap_or_default();
    let bank = if ko { KO_BANKS } else { ES_BANKS }
        .choose(rng)
        .copied()
        .unwrap_or_default();
    template
        .replace("{name}", name)
        .replace("{bank}", bank)
        .replace("{amount}", &(rng.random_range(1..=300) * 10).to_string())
        .replace("{rate}", &rng.random_range(2..=6).to_string())
}

/// One call from a script: a phrasing of each step, sometimes with small talk.
fn call(script: Script, phrasings: Phrasings, rng: &mut ChaCha8Rng, ko: bool) -> String {
    let mut parts = Vec::new();
    for pool in script {
        let phrasing = phrasings.pick(pool, rng);
        parts.push(fill(phrasing, rng, ko));
    }
    if rng.random_bool(0.3) {
        parts.insert(0, if ko { "여보세요" } else { "Dígame" }.to_owned());
    }
    parts.join(". ")
}

/// The generated corpus: training, calibration and (unseen phrasings)
/// evaluation calls, in Korean and Spanish.
pub fn corpus(seed: u64) -> (Vec<Call>, Vec<Call>, Vec<Call>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut make = |phrasings: Phrasings, per_language: usize| {
        let mut calls = Vec::new();
        for (ko, scams, ordinary, language) in [
            (true, KO_SCAMS, KO_ORDINARY, "ko"),
            (false, ES_SCAMS, ES_ORDINARY, "es"),
        ] {
            for i in 0..per_language {
                let scam = i % 2 == 0;
                let pool = if scam { scams } else { ordinary };
                let script = pool[rng.random_range(0..pool.len())];
                calls.push(Call {
                    text: call(script, phrasings, &mut rng, ko),
                    positive: scam,
                    language,
                });
            }
        }
        calls
    };
    let train = make(Phrasings::Training, 1200);
    let calibration = make(Phrasings::Calibration, 300);
    let evaluation = make(Phrasings::Evaluation, 600);
    (train, calibration, evaluation)
}

/// Trains from the generator and measures on the held-out phrasings: F1 on
/// scams, the false-positive rate on ordinary calls, and the calibration
/// (Brier score) — overall and per language.
pub fn evaluate() -> Evaluation {
    let (train, calibration, evaluation) = corpus(SEED);
    let model = Classifier::train(&train, &calibration, SEED);
    Evaluation {
        model: CODE,
        version: VERSION,
        setting: format!(
            "{} generated calls trained, {} calibrated, {} with phrasings never trained on (Korean and Spanish, half scams)",
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
    fn flags_scams_it_never_saw_and_explains_them() {
        let out = model()
            .decide(&serde_json::json!({"transcript":
                "여보세요. 서울중앙지검 수사관입니다. 고객님 명의 계좌가 범죄에 연루되어 있습니다. 자산 보호를 위해 안전계좌로 이체하셔야 합니다"}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.flagged, "{out:?}");
        assert_eq!(out.factors[0].key, "scam_phrase");
        let ordinary = model()
            .decide(&serde_json::json!({"transcript": "엄마 나 오늘 저녁 먹고 들어갈게. 응 너무 늦지 않게 들어와"}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!ordinary.flagged, "{ordinary:?}");
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let short = model().decide(&serde_json::json!({"transcript": "hola"}));
        assert_eq!(short.map_err(|e| e.field), Err("transcript".into()));
        let cyrillic = model().decide(
            &serde_json::json!({"transcript": "Здравствуйте, это служба безопасности банка"}),
        );
        assert!(cyrillic.is_err());
        assert!(model().decide(&serde_json::json!({"text": 1})).is_err());
    }

    #[test]
    fn evaluation_meets_its_published_figures() {
        let e = evaluate();
        let f1 = e.figure("f1_unseen_paraphrases").unwrap_or(0.0);
        let fpr = e.figure("false_positive_rate_ordinary").unwrap_or(1.0);
        assert!(f1 >= 0.9, "{e:?}");
        assert!(fpr <= 0.05, "{e:?}");
    }

    #[test]
    fn training_is_reproducible() {
        let (t, c, _) = corpus(SEED);
        let a = Classifier::train(&t, &c, SEED);
        assert_eq!(a.sha256(), model().artefact_sha256());
    }
}
