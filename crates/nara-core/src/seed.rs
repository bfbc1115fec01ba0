//! Sample countries: the demo's (hand-written services, 10 agencies, 200
//! systems) and the national scale (45 agencies, 1,460 services, 45,000
//! systems, the size of Korea's NIRS). Deterministic for a given seed, so a
//! benchmark or a bug report can be reproduced exactly.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{
    AgencyKind, Audience, Channel, Environment, Grade, Localized, MemberId, NewAgency,
    ServiceInput, ServiceStatus, SystemInput, SystemKind, SystemStatus,
};

/// The X-Road instance the sample countries use.
pub const INSTANCE: &str = "KR";

/// A whole sample country, ready to be written to a store.
#[derive(Debug, Clone)]
pub struct Country {
    pub agencies: Vec<NewAgency>,
    pub services: Vec<ServiceInput>,
    pub systems: Vec<SystemInput>,
}

impl Country {
    pub fn len(&self) -> usize {
        self.agencies.len() + self.services.len() + self.systems.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// (class, code, kind, English, Spanish, Korean): Korea's 19 ministries, 17
/// metropolitan and provincial governments and 9 public bodies.
const AGENCIES: &[(&str, &str, AgencyKind, &str, &str, &str)] = &[
    (
        "GOV",
        "MOIS",
        AgencyKind::Ministry,
        "Ministry of the Interior and Safety",
        "Ministerio del Interior y Seguridad",
        "행정안전부",
    ),
    (
        "GOV",
        "MOHW",
        AgencyKind::Ministry,
        "Ministry of Health and Welfare",
        "Ministerio de Salud y Bienestar",
        "보건복지부",
    ),
    (
        "GOV",
        "MOE",
        AgencyKind::Ministry,
        "Ministry of Education",
        "Ministerio de Educación",
        "교육부",
    ),
    (
        "GOV",
        "MOEL",
        AgencyKind::Ministry,
        "Ministry of Employment and Labor",
        "Ministerio de Empleo y Trabajo",
        "고용노동부",
    ),
    (
        "GOV",
        "MOLIT",
        AgencyKind::Ministry,
        "Ministry of Land, Infrastructure and Transport",
        "Ministerio de Territorio, Infraestructura y Transporte",
        "국토교통부",
    ),
    (
        "GOV",
        "NTS",
        AgencyKind::PublicBody,
        "National Tax Service",
        "Servicio Nacional de Impuestos",
        "국세청",
    ),
    (
        "GOV",
        "KNPA",
        AgencyKind::PublicBody,
        "Korean National Police Agency",
        "Agencia Nacional de Policía de Corea",
        "경찰청",
    ),
    (
        "PUB",
        "KISA",
        AgencyKind::PublicBody,
        "Korea Internet and Security Agency",
        "Agencia de Internet y Seguridad de Corea",
        "한국인터넷진흥원",
    ),
    (
        "GOV",
        "NIRS",
        AgencyKind::PublicBody,
        "National Information Resources Service",
        "Servicio Nacional de Recursos de Información",
        "국가정보자원관리원",
    ),
    (
        "LOC",
        "SEOUL",
        AgencyKind::LocalGovernment,
        "Seoul Metropolitan Government",
        "Gobierno Metropolitano de Seúl",
        "서울특별시",
    ),
    // The demo country is the ten above; the national scale adds the rest.
    (
        "GOV",
        "MOEF",
        AgencyKind::Ministry,
        "Ministry of Economy and Finance",
        "Ministerio de Economía y Finanzas",
        "기획재정부",
    ),
    (
        "GOV",
        "MSIT",
        AgencyKind::Ministry,
        "Ministry of Science and ICT",
        "Ministerio de Ciencia y TIC",
        "과학기술정보통신부",
    ),
    (
        "GOV",
        "MOFA",
        AgencyKind::Ministry,
        "Ministry of Foreign Affairs",
        "Ministerio de Asuntos Exteriores",
        "외교부",
    ),
    (
        "GOV",
        "MOU",
        AgencyKind::Ministry,
        "Ministry of Unification",
        "Ministerio de Unificación",
        "통일부",
    ),
    (
        "GOV",
        "MOJ",
        AgencyKind::Ministry,
        "Ministry of Justice",
        "Ministerio de Justicia",
        "법무부",
    ),
    (
        "GOV",
        "MND",
        AgencyKind::Ministry,
        "Ministry of National Defense",
        "Ministerio de Defensa Nacional",
        "국방부",
    ),
    (
        "GOV",
        "MPVA",
        AgencyKind::Ministry,
        "Ministry of Patriots and Veterans Affairs",
        "Ministerio de Patriotas y Veteranos",
        "국가보훈부",
    ),
    (
        "GOV",
        "MCST",
        AgencyKind::Ministry,
        "Ministry of Culture, Sports and Tourism",
        "Ministerio de Cultura, Deportes y Turismo",
        "문화체육관광부",
    ),
    (
        "GOV",
        "MAFRA",
        AgencyKind::Ministry,
        "Ministry of Agriculture, Food and Rural Affairs",
        "Ministerio de Agricultura, Alimentación y Asuntos Rurales",
        "농림축산식품부",
    ),
    (
        "GOV",
        "MOTIE",
        AgencyKind::Ministry,
        "Ministry of Trade, Industry and Energy",
        "Ministerio de Comercio, Industria y Energía",
        "산업통상자원부",
    ),
    (
        "GOV",
        "ME",
        AgencyKind::Ministry,
        "Ministry of Environment",
        "Ministerio de Medio Ambiente",
        "환경부",
    ),
    (
        "GOV",
        "MOGEF",
        AgencyKind::Ministry,
        "Ministry of Gender Equality and Family",
        "Ministerio de Igualdad de Género y Familia",
        "여성가족부",
    ),
    (
        "GOV",
        "MOF",
        AgencyKind::Ministry,
        "Ministry of Oceans and Fisheries",
        "Ministerio de Océanos y Pesca",
        "해양수산부",
    ),
    (
        "GOV",
        "MSS",
        AgencyKind::Ministry,
        "Ministry of SMEs and Startups",
        "Ministerio de Pymes y Empresas Emergentes",
        "중소벤처기업부",
    ),
    (
        "LOC",
        "BUSAN",
        AgencyKind::LocalGovernment,
        "Busan Metropolitan City",
        "Ciudad Metropolitana de Busan",
        "부산광역시",
    ),
    (
        "LOC",
        "DAEGU",
        AgencyKind::LocalGovernment,
        "Daegu Metropolitan City",
        "Ciudad Metropolitana de Daegu",
        "대구광역시",
    ),
    (
        "LOC",
        "INCHEON",
        AgencyKind::LocalGovernment,
        "Incheon Metropolitan City",
        "Ciudad Metropolitana de Incheon",
        "인천광역시",
    ),
    (
        "LOC",
        "GWANGJU",
        AgencyKind::LocalGovernment,
        "Gwangju Metropolitan City",
        "Ciudad Metropolitana de Gwangju",
        "광주광역시",
    ),
    (
        "LOC",
        "DAEJEON",
        AgencyKind::LocalGovernment,
        "Daejeon Metropolitan City",
        "Ciudad Metropolitana de Daejeon",
        "대전광역시",
    ),
    (
        "LOC",
        "ULSAN",
        AgencyKind::LocalGovernment,
        "Ulsan Metropolitan City",
        "Ciudad Metropolitana de Ulsan",
        "울산광역시",
    ),
    (
        "LOC",
        "SEJONG",
        AgencyKind::LocalGovernment,
        "Sejong Special Self-Governing City",
        "Ciudad Autónoma Especial de Sejong",
        "세종특별자치시",
    ),
    (
        "LOC",
        "GYEONGGI",
        AgencyKind::LocalGovernment,
        "Gyeonggi Province",
        "Provincia de Gyeonggi",
        "경기도",
    ),
    (
        "LOC",
        "GANGWON",
        AgencyKind::LocalGovernment,
        "Gangwon State",
        "Estado de Gangwon",
        "강원특별자치도",
    ),
    (
        "LOC",
        "CHUNGBUK",
        AgencyKind::LocalGovernment,
        "North Chungcheong Province",
        "Provincia de Chungcheong del Norte",
        "충청북도",
    ),
    (
        "LOC",
        "CHUNGNAM",
        AgencyKind::LocalGovernment,
        "South Chungcheong Province",
        "Provincia de Chungcheong del Sur",
        "충청남도",
    ),
    (
        "LOC",
        "JEONBUK",
        AgencyKind::LocalGovernment,
        "Jeonbuk State",
        "Estado de Jeonbuk",
        "전북특별자치도",
    ),
    (
        "LOC",
        "JEONNAM",
        AgencyKind::LocalGovernment,
        "South Jeolla Province",
        "Provincia de Jeolla del Sur",
        "전라남도",
    ),
    (
        "LOC",
        "GYEONGBUK",
        AgencyKind::LocalGovernment,
        "North Gyeongsang Province",
        "Provincia de Gyeongsang del Norte",
        "경상북도",
    ),
    (
        "LOC",
        "GYEONGNAM",
        AgencyKind::LocalGovernment,
        "South Gyeongsang Province",
        "Provincia de Gyeongsang del Sur",
        "경상남도",
    ),
    (
        "LOC",
        "JEJU",
        AgencyKind::LocalGovernment,
        "Jeju Special Self-Governing Province",
        "Provincia Autónoma Especial de Jeju",
        "제주특별자치도",
    ),
    (
        "GOV",
        "KCS",
        AgencyKind::PublicBody,
        "Korea Customs Service",
        "Servicio de Aduanas de Corea",
        "관세청",
    ),
    (
        "GOV",
        "KOSTAT",
        AgencyKind::PublicBody,
        "Statistics Korea",
        "Estadística de Corea",
        "통계청",
    ),
    (
        "GOV",
        "NFA",
        AgencyKind::PublicBody,
        "National Fire Agency",
        "Agencia Nacional de Bomberos",
        "소방청",
    ),
    (
        "PUB",
        "NHIS",
        AgencyKind::PublicBody,
        "National Health Insurance Service",
        "Servicio Nacional de Seguro de Salud",
        "국민건강보험공단",
    ),
    (
        "PUB",
        "NPS",
        AgencyKind::PublicBody,
        "National Pension Service",
        "Servicio Nacional de Pensiones",
        "국민연금공단",
    ),
];

const DEMO_AGENCIES: usize = 10;

/// A hand-written service: (agency code, service code, audience, channel,
/// legal basis, name [en, es, ko], description [en, es, ko]).
type ServiceRow = (
    &'static str,
    &'static str,
    Audience,
    Channel,
    &'static str,
    [&'static str; 3],
    [&'static str; 3],
);

const SERVICES: &[ServiceRow] = &[
    (
        "MOIS",
        "resident-registration-certificate",
        Audience::Citizen,
        Channel::Online,
        "Resident Registration Act, Article 29",
        [
            "Resident registration certificate",
            "Certificado de empadronamiento",
            "주민등록표 등본 발급",
        ],
        [
            "Issue a certified copy of your household's resident registration, free of charge and at once.",
            "Obtenga al instante y sin coste una copia certificada del registro de residentes de su hogar.",
            "세대의 주민등록표 등본을 즉시 무료로 발급받을 수 있습니다.",
        ],
    ),
    (
        "MOIS",
        "move-in-report",
        Audience::Citizen,
        Channel::Online,
        "Resident Registration Act, Article 16",
        [
            "Report a change of address",
            "Comunicar un cambio de domicilio",
            "전입신고",
        ],
        [
            "Tell the state you have moved; every agency that needs your address is updated once.",
            "Informe de su mudanza; todos los organismos que necesitan su domicilio se actualizan a la vez.",
            "이사한 사실을 한 번 신고하면 주소가 필요한 모든 기관에 반영됩니다.",
        ],
    ),
    (
        "MOIS",
        "elderly-protection-zone-petition",
        Audience::Citizen,
        Channel::Online,
        "Road Traffic Act, Article 12-2",
        [
            "Petition for an elderly protection zone",
            "Petición de zona de protección de personas mayores",
            "노인보호구역 지정 신청",
        ],
        [
            "Ask for lower speed limits and safer crossings near a senior centre or park.",
            "Solicite límites de velocidad más bajos y cruces más seguros cerca de un centro de mayores o un parque.",
            "경로당이나 공원 주변의 속도 제한과 안전한 횡단보도를 요청합니다.",
        ],
    ),
    (
        "MOIS",
        "digital-id-card",
        Audience::Citizen,
        Channel::Mobile,
        "Resident Registration Act, Article 25",
        [
            "Mobile resident ID card",
            "Documento de identidad móvil",
            "모바일 주민등록증 발급",
        ],
        [
            "Carry your resident ID on your phone, verifiable by QR code.",
            "Lleve su documento de identidad en el móvil, verificable mediante código QR.",
            "주민등록증을 휴대폰에 담아 QR 코드로 확인받을 수 있습니다.",
        ],
    ),
    (
        "MOHW",
        "disability-benefit",
        Audience::Citizen,
        Channel::Online,
        "Act on Welfare of Persons with Disabilities, Article 49",
        [
            "Disability allowance",
            "Prestación por discapacidad",
            "장애수당 신청",
        ],
        [
            "Apply for a monthly allowance; your disability status is fetched with your consent.",
            "Solicite una prestación mensual; su situación de discapacidad se consulta con su consentimiento.",
            "월 장애수당을 신청합니다. 장애 정도 정보는 동의를 받아 조회합니다.",
        ],
    ),
    (
        "MOHW",
        "basic-livelihood-security",
        Audience::Citizen,
        Channel::Mixed,
        "National Basic Living Security Act, Article 21",
        [
            "Basic livelihood support",
            "Ayuda de subsistencia básica",
            "기초생활보장 급여 신청",
        ],
        [
            "Apply for living, housing, education and medical support when income falls below the standard.",
            "Solicite ayudas de manutención, vivienda, educación y salud cuando sus ingresos no alcanzan el mínimo.",
            "소득이 기준에 미치지 못할 때 생계·주거·교육·의료 급여를 신청합니다.",
        ],
    ),
    (
        "MOHW",
        "childbirth-support",
        Audience::Citizen,
        Channel::Online,
        "Maternal and Child Health Act, Article 10",
        [
            "Childbirth support package",
            "Paquete de apoyo al nacimiento",
            "출산 지원 통합 신청",
        ],
        [
            "Register a birth and apply for the parental allowance and vouchers in one step.",
            "Inscriba un nacimiento y solicite la prestación parental y los bonos en un solo paso.",
            "출생신고와 부모급여, 바우처를 한 번에 신청합니다.",
        ],
    ),
    (
        "MOHW",
        "long-term-care-rating",
        Audience::Citizen,
        Channel::Mixed,
        "Act on Long-Term Care Insurance for Senior Citizens, Article 13",
        [
            "Long-term care rating",
            "Valoración de dependencia",
            "장기요양등급 판정 신청",
        ],
        [
            "Request an assessment for home or residential care for an older person.",
            "Solicite la valoración para atención domiciliaria o residencial de una persona mayor.",
            "어르신의 재가 또는 시설 돌봄을 위한 등급 판정을 신청합니다.",
        ],
    ),
    (
        "MOE",
        "extended-hour-school-enrolment",
        Audience::Citizen,
        Channel::Online,
        "Elementary and Secondary Education Act, Article 23",
        [
            "Extended-hour primary school enrolment",
            "Inscripción en horario escolar ampliado",
            "늘봄학교 신청",
        ],
        [
            "Enrol your child in after-school care; eligibility is checked from family and employment records.",
            "Inscriba a su hijo en el cuidado extraescolar; la elegibilidad se comprueba con los registros familiares y laborales.",
            "자녀의 방과후 돌봄을 신청합니다. 가족·재직 정보로 자격을 확인합니다.",
        ],
    ),
    (
        "MOE",
        "graduation-certificate",
        Audience::Citizen,
        Channel::Online,
        "Elementary and Secondary Education Act, Article 30-6",
        [
            "School graduation certificate",
            "Certificado de graduación escolar",
            "졸업증명서 발급",
        ],
        [
            "Issue a verifiable certificate of graduation from a primary or secondary school.",
            "Obtenga un certificado verificable de graduación de primaria o secundaria.",
            "초·중·고 졸업증명서를 검증 가능한 전자문서로 발급합니다.",
        ],
    ),
    (
        "MOE",
        "student-loan",
        Audience::Citizen,
        Channel::Online,
        "Korea Student Aid Foundation Act, Article 18",
        [
            "Student loan application",
            "Solicitud de préstamo estudiantil",
            "학자금 대출 신청",
        ],
        [
            "Apply for a government student loan with income-contingent repayment.",
            "Solicite un préstamo estudiantil público con devolución según ingresos.",
            "소득 연계 상환 방식의 정부 학자금 대출을 신청합니다.",
        ],
    ),
    (
        "MOEL",
        "unemployment-benefit",
        Audience::Citizen,
        Channel::Online,
        "Employment Insurance Act, Article 40",
        [
            "Unemployment benefit",
            "Prestación por desempleo",
            "실업급여 신청",
        ],
        [
            "Claim job-seeker's benefit; your insured employment history is fetched, not re-entered.",
            "Solicite la prestación por desempleo; su historial laboral asegurado se consulta sin volver a introducirlo.",
            "구직급여를 신청합니다. 고용보험 이력은 다시 입력하지 않고 조회합니다.",
        ],
    ),
    (
        "MOEL",
        "employment-certificate",
        Audience::Citizen,
        Channel::Online,
        "Employment Insurance Act, Article 17",
        [
            "Employment insurance record",
            "Certificado de historial de empleo",
            "고용보험 자격이력 확인서 발급",
        ],
        [
            "Issue a verifiable record of your insured employment.",
            "Obtenga un certificado verificable de su empleo asegurado.",
            "고용보험 가입 이력을 검증 가능한 문서로 발급합니다.",
        ],
    ),
    (
        "MOEL",
        "wage-arrears-report",
        Audience::Citizen,
        Channel::Online,
        "Labor Standards Act, Article 104",
        [
            "Report unpaid wages",
            "Denunciar salarios impagados",
            "임금체불 진정",
        ],
        [
            "File a complaint about unpaid wages with the labour inspectorate.",
            "Presente una denuncia por salarios impagados ante la inspección de trabajo.",
            "임금체불에 대해 근로감독관에게 진정을 제기합니다.",
        ],
    ),
    (
        "MOLIT",
        "vehicle-registration",
        Audience::Citizen,
        Channel::Mixed,
        "Motor Vehicle Management Act, Article 8",
        [
            "Vehicle registration",
            "Matriculación de vehículos",
            "자동차 신규등록",
        ],
        [
            "Register a new or imported vehicle and receive its plate number.",
            "Matricule un vehículo nuevo o importado y reciba su número de placa.",
            "신차 또는 수입차를 등록하고 번호판을 받습니다.",
        ],
    ),
    (
        "MOLIT",
        "building-register-extract",
        Audience::Citizen,
        Channel::Online,
        "Building Act, Article 38",
        [
            "Building register extract",
            "Extracto del registro de edificios",
            "건축물대장 발급",
        ],
        [
            "Issue an extract of the building register for any address.",
            "Obtenga un extracto del registro de edificios de cualquier dirección.",
            "주소별 건축물대장을 발급합니다.",
        ],
    ),
    (
        "MOLIT",
        "youth-housing-rent",
        Audience::Citizen,
        Channel::Online,
        "Housing Welfare Act, Article 11",
        [
            "Youth monthly rent support",
            "Ayuda al alquiler para jóvenes",
            "청년 월세 지원 신청",
        ],
        [
            "Young people living away from their parents can apply for monthly rent support.",
            "Los jóvenes que viven fuera del hogar familiar pueden solicitar ayuda mensual al alquiler.",
            "부모와 떨어져 사는 청년이 월세 지원을 신청합니다.",
        ],
    ),
    (
        "NTS",
        "business-registration",
        Audience::Business,
        Channel::Online,
        "Value-Added Tax Act, Article 8",
        [
            "Business registration",
            "Registro de empresas",
            "사업자등록 신청",
        ],
        [
            "Register a new business for tax; an official reviews the application.",
            "Registre una nueva empresa a efectos fiscales; un funcionario revisa la solicitud.",
            "새 사업자를 등록합니다. 담당 공무원이 신청을 검토합니다.",
        ],
    ),
    (
        "NTS",
        "tax-payment-certificate",
        Audience::Citizen,
        Channel::Online,
        "National Tax Collection Act, Article 107",
        [
            "Tax payment certificate",
            "Certificado de estar al corriente de pago",
            "납세증명서 발급",
        ],
        [
            "Prove that you have no overdue national taxes.",
            "Acredite que no tiene impuestos nacionales pendientes.",
            "체납한 국세가 없음을 증명합니다.",
        ],
    ),
    (
        "NTS",
        "year-end-tax-settlement",
        Audience::Citizen,
        Channel::Online,
        "Income Tax Act, Article 137",
        [
            "Year-end tax settlement",
            "Ajuste fiscal de fin de año",
            "연말정산 간소화",
        ],
        [
            "Review the deductions the state already knows and settle your income tax.",
            "Revise las deducciones que el Estado ya conoce y liquide su impuesto sobre la renta.",
            "국가가 이미 보유한 공제 자료를 확인하고 소득세를 정산합니다.",
        ],
    ),
    (
        "NTS",
        "income-certificate",
        Audience::Citizen,
        Channel::Online,
        "Income Tax Act, Article 4",
        [
            "Certificate of income",
            "Certificado de ingresos",
            "소득금액증명 발급",
        ],
        [
            "Issue a verifiable certificate of your declared income.",
            "Obtenga un certificado verificable de sus ingresos declarados.",
            "신고된 소득금액을 검증 가능한 문서로 발급합니다.",
        ],
    ),
    (
        "KNPA",
        "lost-property",
        Audience::Citizen,
        Channel::Online,
        "Lost Articles Act, Article 1",
        ["Lost and found", "Objetos perdidos", "유실물 신고·조회"],
        [
            "Report or search for lost property handed in anywhere in the country.",
            "Denuncie o busque objetos perdidos entregados en cualquier lugar del país.",
            "전국에서 접수된 유실물을 신고하거나 조회합니다.",
        ],
    ),
    (
        "KNPA",
        "criminal-record-check",
        Audience::Citizen,
        Channel::InPerson,
        "Act on the Lapse of Criminal Sentences, Article 6",
        [
            "Criminal record certificate",
            "Certificado de antecedentes penales",
            "범죄경력회보서 발급",
        ],
        [
            "Request a certificate of your criminal record for employment or a visa.",
            "Solicite un certificado de antecedentes penales para un empleo o un visado.",
            "취업이나 비자를 위한 범죄경력회보서를 신청합니다.",
        ],
    ),
    (
        "KNPA",
        "driving-licence-renewal",
        Audience::Citizen,
        Channel::Mixed,
        "Road Traffic Act, Article 87",
        [
            "Driving licence renewal",
            "Renovación del permiso de conducir",
            "운전면허 갱신",
        ],
        [
            "Renew your driving licence and book the medical check.",
            "Renueve su permiso de conducir y reserve el reconocimiento médico.",
            "운전면허를 갱신하고 적성검사를 예약합니다.",
        ],
    ),
    (
        "KISA",
        "phishing-report",
        Audience::Citizen,
        Channel::Online,
        "Act on Promotion of Information and Communications Network Utilization, Article 48-2",
        [
            "Report a phishing or smishing message",
            "Denunciar un mensaje de phishing o smishing",
            "피싱·스미싱 신고",
        ],
        [
            "Forward a suspicious message or call; analysts block the numbers and links.",
            "Reenvíe un mensaje o llamada sospechosa; los analistas bloquean los números y enlaces.",
            "의심스러운 문자나 전화를 신고하면 분석가가 번호와 링크를 차단합니다.",
        ],
    ),
    (
        "KISA",
        "personal-data-breach-report",
        Audience::Business,
        Channel::Online,
        "Personal Information Protection Act, Article 34",
        [
            "Report a personal data breach",
            "Notificar una brecha de datos personales",
            "개인정보 유출 신고",
        ],
        [
            "Organisations report a breach of personal data within 72 hours.",
            "Las organizaciones notifican una brecha de datos personales en un plazo de 72 horas.",
            "기관은 개인정보 유출을 72시간 이내에 신고합니다.",
        ],
    ),
    (
        "NIRS",
        "cloud-hosting-request",
        Audience::Agency,
        Channel::Online,
        "Electronic Government Act, Article 54",
        [
            "Government cloud hosting request",
            "Solicitud de alojamiento en la nube pública",
            "정부 클라우드 자원 신청",
        ],
        [
            "Agencies request compute, storage and network for a new system on the government cloud.",
            "Los organismos solicitan cómputo, almacenamiento y red para un nuevo sistema en la nube del gobierno.",
            "기관이 정부 클라우드에 새 시스템을 위한 자원을 신청합니다.",
        ],
    ),
    (
        "NIRS",
        "backup-restore-request",
        Audience::Agency,
        Channel::Online,
        "Electronic Government Act, Article 56",
        [
            "Backup restore request",
            "Solicitud de restauración de copias",
            "백업 복구 요청",
        ],
        [
            "Agencies ask for a verified restore of a system's backup.",
            "Los organismos solicitan la restauración verificada de la copia de un sistema.",
            "기관이 시스템 백업의 검증된 복구를 요청합니다.",
        ],
    ),
    (
        "SEOUL",
        "public-bike-pass",
        Audience::Citizen,
        Channel::Mobile,
        "Seoul Metropolitan Bicycle Ordinance, Article 9",
        [
            "Public bike pass",
            "Abono de bicicleta pública",
            "따릉이 이용권 구매",
        ],
        [
            "Buy a day, month or year pass for Seoul's public bikes.",
            "Compre un abono diario, mensual o anual para las bicicletas públicas de Seúl.",
            "서울 공공자전거 일일·정기 이용권을 구매합니다.",
        ],
    ),
    (
        "SEOUL",
        "large-waste-collection",
        Audience::Citizen,
        Channel::Online,
        "Wastes Control Act, Article 14",
        [
            "Bulky waste collection",
            "Recogida de residuos voluminosos",
            "대형폐기물 배출 신고",
        ],
        [
            "Book the collection of furniture or appliances and pay the fee.",
            "Reserve la recogida de muebles o electrodomésticos y pague la tasa.",
            "가구나 가전제품 수거를 예약하고 수수료를 납부합니다.",
        ],
    ),
];

/// (slug, [en, es, ko]) topics the national scale combines with actions.
const TOPICS: &[(&str, [&str; 3])] = &[
    (
        "building-permit",
        ["Building permit", "Permiso de obra", "건축 허가"],
    ),
    (
        "business-licence",
        ["Business licence", "Licencia de actividad", "영업 허가"],
    ),
    (
        "childcare-voucher",
        ["Childcare voucher", "Bono de guardería", "보육 바우처"],
    ),
    (
        "disability-card",
        [
            "Disability card",
            "Tarjeta de discapacidad",
            "장애인 등록증",
        ],
    ),
    (
        "elderly-care",
        ["Elderly care", "Atención a mayores", "노인 돌봄"],
    ),
    (
        "energy-subsidy",
        ["Energy subsidy", "Subsidio energético", "에너지 바우처"],
    ),
    (
        "farmland",
        [
            "Farmland registration",
            "Registro de tierras agrícolas",
            "농지 등록",
        ],
    ),
    (
        "fishing-licence",
        ["Fishing licence", "Licencia de pesca", "어업 면허"],
    ),
    (
        "food-safety",
        [
            "Food safety inspection",
            "Inspección sanitaria de alimentos",
            "식품 위생 점검",
        ],
    ),
    (
        "health-checkup",
        ["Health check-up", "Chequeo médico", "건강검진"],
    ),
    (
        "housing-allowance",
        ["Housing allowance", "Ayuda a la vivienda", "주거 급여"],
    ),
    (
        "job-training",
        ["Job training", "Formación para el empleo", "직업 훈련"],
    ),
    (
        "land-register",
        ["Land register", "Registro de la propiedad", "토지 대장"],
    ),
    ("local-tax", ["Local tax", "Impuesto local", "지방세"]),
    (
        "marriage-report",
        ["Marriage report", "Declaración de matrimonio", "혼인 신고"],
    ),
    (
        "military-service",
        ["Military service", "Servicio militar", "병역"],
    ),
    (
        "noise-complaint",
        ["Noise complaint", "Queja por ruido", "소음 민원"],
    ),
    (
        "parking-permit",
        [
            "Resident parking permit",
            "Permiso de aparcamiento para residentes",
            "거주자 우선주차",
        ],
    ),
    ("passport", ["Passport", "Pasaporte", "여권"]),
    ("pension", ["Pension", "Pensión", "연금"]),
    (
        "public-housing",
        [
            "Public rental housing",
            "Vivienda pública de alquiler",
            "공공임대주택",
        ],
    ),
    (
        "road-occupation",
        [
            "Road occupation permit",
            "Permiso de ocupación de vía pública",
            "도로 점용 허가",
        ],
    ),
    ("scholarship", ["Scholarship", "Beca", "장학금"]),
    (
        "small-business-loan",
        [
            "Small business loan",
            "Préstamo para pequeñas empresas",
            "소상공인 정책자금",
        ],
    ),
    (
        "startup-support",
        [
            "Startup support",
            "Apoyo a empresas emergentes",
            "창업 지원",
        ],
    ),
    (
        "tourism-licence",
        [
            "Tourism business licence",
            "Licencia turística",
            "관광사업 등록",
        ],
    ),
    (
        "vaccination",
        [
            "Vaccination record",
            "Registro de vacunación",
            "예방접종 기록",
        ],
    ),
    (
        "veteran-benefit",
        [
            "Veterans' benefit",
            "Prestación para veteranos",
            "보훈 급여",
        ],
    ),
    (
        "water-supply",
        ["Water supply", "Suministro de agua", "상수도"],
    ),
    (
        "youth-support",
        ["Youth support", "Apoyo a la juventud", "청년 지원"],
    ),
    (
        "emergency-relief",
        ["Emergency relief", "Ayuda de emergencia", "긴급 복지 지원"],
    ),
    (
        "family-relations",
        [
            "Family relations certificate",
            "Certificado de relaciones familiares",
            "가족관계증명서",
        ],
    ),
    (
        "import-declaration",
        [
            "Import declaration",
            "Declaración de importación",
            "수입 신고",
        ],
    ),
    (
        "environment-permit",
        ["Emission permit", "Permiso de emisiones", "배출시설 허가"],
    ),
    (
        "culture-voucher",
        ["Culture voucher", "Bono cultural", "문화누리카드"],
    ),
    (
        "fire-safety",
        [
            "Fire safety inspection",
            "Inspección de seguridad contra incendios",
            "소방 안전 점검",
        ],
    ),
];

/// (slug, en, es, ko); `{}` is where the topic goes.
const ACTIONS: &[(&str, &str, &str, &str)] = &[
    ("apply", "{}: application", "{}: solicitud", "{} 신청"),
    (
        "certificate",
        "{}: certificate",
        "{}: certificado",
        "{} 증명서 발급",
    ),
    ("renewal", "{}: renewal", "{}: renovación", "{} 갱신"),
    (
        "change",
        "{}: change of details",
        "{}: modificación de datos",
        "{} 변경 신고",
    ),
    (
        "status",
        "{}: status enquiry",
        "{}: consulta de estado",
        "{} 현황 조회",
    ),
    ("cancel", "{}: cancellation", "{}: baja", "{} 취소·해지"),
    ("appeal", "{}: appeal", "{}: recurso", "{} 이의 신청"),
    (
        "payment",
        "{}: fee payment",
        "{}: pago de tasas",
        "{} 수수료 납부",
    ),
];

/// (slug, English name) of the functions agency systems serve.
const FUNCTIONS: &[(&str, &str)] = &[
    ("RES", "Resident registry"),
    ("TAX", "Tax collection"),
    ("CASE", "Case management"),
    ("DOC", "Electronic document"),
    ("HR", "Human resources"),
    ("FIN", "Financial accounting"),
    ("WEB", "Public website"),
    ("MAIL", "Mail"),
    ("IAM", "Identity and access"),
    ("GIS", "Geographic information"),
    ("STAT", "Statistics"),
    ("ARC", "Records archive"),
    ("PAY", "Payment gateway"),
    ("CALL", "Contact centre"),
    ("SEC", "Security monitoring"),
    ("BKP", "Backup"),
    ("NET", "Core network"),
    ("PERMIT", "Permits and licences"),
    ("WELF", "Welfare benefits"),
    ("PROC", "Procurement"),
];

fn agency_id(class: &str, code: &str) -> Option<MemberId> {
    MemberId::parse(&format!("{INSTANCE}/{class}/{code}")).ok()
}

fn agencies(count: usize) -> Vec<NewAgency> {
    AGENCIES
        .iter()
        .take(count)
        .filter_map(|(class, code, kind, en, es, ko)| {
            Some(NewAgency {
                id: agency_id(class, code)?,
                name: Localized::new(en, es, ko),
                kind: *kind,
            })
        })
        .collect()
}

fn hand_written_services(agencies: &[NewAgency]) -> Vec<ServiceInput> {
    SERVICES
        .iter()
        .filter_map(|(agency, code, audience, channel, basis, name, desc)| {
            let owner = agencies.iter().find(|a| a.id.code() == *agency)?;
            Some(ServiceInput {
                agency: owner.id.clone(),
                code: (*code).to_owned(),
                name: Localized::new(name[0], name[1], name[2]),
                description: Localized::new(desc[0], desc[1], desc[2]),
                audience: *audience,
                legal_basis: (*basis).to_owned(),
                channel: *channel,
                status: ServiceStatus::Active,
            })
        })
        .collect()
}

/// Picks from `choices` with the given weights (which need not sum to 100).
fn weighted<T: Copy>(rng: &mut ChaCha8Rng, choices: &[(T, u32)]) -> T {
    let total: u32 = choices.iter().map(|(_, w)| w).sum();
    let mut roll = rng.random_range(0..total.max(1));
    for (value, weight) in choices {
        if roll < *weight {
            return *value;
        }
        roll -= weight;
    }
    choices[0].0
}

fn generated_services(
    rng: &mut ChaCha8Rng,
    agencies: &[NewAgency],
    existing: &[ServiceInput],
    total: usize,
) -> Vec<ServiceInput> {
    let mut out = Vec::with_capacity(total.saturating_sub(existing.len()));
    let mut taken: std::collections::HashSet<(String, String)> = existing
        .iter()
        .map(|s| (s.agency.to_string(), s.code.clone()))
        .collect();
    let mut i = 0usize;
    while existing.len() + out.len() < total {
        let agency = &agencies[i % agencies.len()];
        i += 1;
        let (topic_slug, topic) = TOPICS[rng.random_range(0..TOPICS.len())];
        let (action_slug, en, es, ko) = ACTIONS[rng.random_range(0..ACTIONS.len())];
        let code = format!("{topic_slug}-{action_slug}");
        if !taken.insert((agency.id.to_string(), code.clone())) {
            continue;
        }
        let name = Localized::new(
            &en.replace("{}", topic[0]),
            &es.replace("{}", topic[1]),
            &ko.replace("{}", topic[2]),
        );
        let description = Localized::new(
            &format!("{} — offered by the {}.", name.en, agency.name.en),
            &format!("{} — ofrecido por {}.", name.es, agency.name.es),
            &format!("{} 민원입니다. 담당 기관: {}.", name.ko, agency.name.ko),
        );
        out.push(ServiceInput {
            agency: agency.id.clone(),
            code,
            name,
            description,
            audience: weighted(
                rng,
                &[
                    (Audience::Citizen, 70),
                    (Audience::Business, 22),
                    (Audience::Agency, 8),
                ],
            ),
            legal_basis: format!(
                "Enforcement Decree on {}, Article {}",
                topic[0],
                rng.random_range(2..60)
            ),
            channel: weighted(
                rng,
                &[
                    (Channel::Online, 60),
                    (Channel::Mixed, 20),
                    (Channel::Mobile, 10),
                    (Channel::InPerson, 10),
                ],
            ),
            status: weighted(
                rng,
                &[
                    (ServiceStatus::Active, 90),
                    (ServiceStatus::Planned, 5),
                    (ServiceStatus::Suspended, 3),
                    (ServiceStatus::Retired, 2),
                ],
            ),
        });
    }
    out
}

fn systems(rng: &mut ChaCha8Rng, agencies: &[NewAgency], total: usize) -> Vec<SystemInput> {
    let grades: Vec<(Grade, u32)> = Grade::ALL.into_iter().zip([5, 15, 40, 40]).collect();
    (0..total)
        .map(|n| {
            let agency = &agencies[n % agencies.len()];
            let serial = n / agencies.len() + 1;
            let (func, func_name) = FUNCTIONS[rng.random_range(0..FUNCTIONS.len())];
            let kind = weighted(
                rng,
                &[
                    (SystemKind::Application, 30),
                    (SystemKind::Server, 35),
                    (SystemKind::Database, 15),
                    (SystemKind::NetworkDevice, 12),
                    (SystemKind::Storage, 8),
                ],
            );
            let environment = weighted(
                rng,
                &[
                    (Environment::Production, 70),
                    (Environment::DisasterRecovery, 10),
                    (Environment::Staging, 12),
                    (Environment::Development, 8),
                ],
            );
            let code_part = agency.id.code().to_ascii_lowercase();
            let endpoint_url = match kind {
                SystemKind::Application => Some(format!(
                    "https://{}.{code_part}.go.kr/",
                    func.to_ascii_lowercase()
                )),
                SystemKind::Server | SystemKind::Database => Some(format!(
                    "https://10.{}.{}.{}:{}/",
                    rng.random_range(0..255),
                    rng.random_range(0..255),
                    rng.random_range(1..255),
                    if kind == SystemKind::Server {
                        443
                    } else {
                        5432
                    }
                )),
                SystemKind::NetworkDevice | SystemKind::Storage => None,
            };
            let kind_word = match kind {
                SystemKind::Application => "application",
                SystemKind::Server => "server",
                SystemKind::Database => "database",
                SystemKind::NetworkDevice => "switch",
                SystemKind::Storage => "storage array",
            };
            SystemInput {
                agency: agency.id.clone(),
                code: format!(
                    "{func}-{}-{serial:04}",
                    kind.as_str().to_ascii_uppercase().replace('_', "")
                ),
                name: format!("{func_name} {kind_word} {serial:02}"),
                kind,
                grade: weighted(rng, &grades),
                environment,
                endpoint_url,
                status: weighted(
                    rng,
                    &[
                        (SystemStatus::Operational, 90),
                        (SystemStatus::Degraded, 3),
                        (SystemStatus::Maintenance, 4),
                        (SystemStatus::Retired, 3),
                    ],
                ),
            }
        })
        .collect()
}

fn country(seed: u64, agency_count: usize, service_count: usize, system_count: usize) -> Country {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let agencies = agencies(agency_count);
    let mut services = hand_written_services(&agencies);
    services.truncate(service_count);
    let more = generated_services(&mut rng, &agencies, &services, service_count);
    services.extend(more);
    let systems = systems(&mut rng, &agencies, system_count);
    Country {
        agencies,
        services,
        systems,
    }
}

/// The demo country: 10 agencies, 30 hand-written services, 200 systems.
pub fn demo() -> Country {
    country(2026, DEMO_AGENCIES, SERVICES.len(), 200)
}

/// A whole country at Korea's scale: 45 agencies, 1,460 services, 45,000 systems.
pub fn national(seed: u64) -> Country {
    country(seed, AGENCIES.len(), 1_460, 45_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_country_is_complete_and_valid() {
        let c = demo();
        assert_eq!(c.agencies.len(), 10);
        assert_eq!(c.services.len(), 30);
        assert_eq!(c.systems.len(), 200);
        for a in &c.agencies {
            a.validate().unwrap();
        }
        for s in &c.services {
            s.validate().unwrap();
        }
        for s in &c.systems {
            s.validate().unwrap();
        }
        for g in Grade::ALL {
            assert!(
                c.systems.iter().any(|s| s.grade == g),
                "grade {g:?} missing"
            );
        }
    }

    #[test]
    fn national_country_is_deterministic_and_unique() {
        let a = national(7);
        let b = national(7);
        assert_eq!(a.agencies.len(), 45);
        assert_eq!(a.services.len(), 1_460);
        assert_eq!(a.systems.len(), 45_000);
        assert_eq!(a.systems[12_345], b.systems[12_345]);
        assert_ne!(national(8).systems[1..50], a.systems[1..50]);
        let codes: std::collections::HashSet<_> =
            a.systems.iter().map(|s| (&s.agency, &s.code)).collect();
        assert_eq!(codes.len(), a.systems.len());
        let codes: std::collections::HashSet<_> =
            a.services.iter().map(|s| (&s.agency, &s.code)).collect();
        assert_eq!(codes.len(), a.services.len());
        for s in a.services.iter().chain(b.services.iter().take(10)) {
            s.validate().unwrap();
        }
    }
}
