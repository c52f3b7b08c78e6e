#!/usr/bin/env python3
"""Generate kdcli's small, synthetic, MASSIVE-layout sample data (deterministic, stdlib only).

Writes, relative to the repository root:

* ``examples/data/massive-sample/data/<locale>.jsonl``: 10 locales, 10 intents,
  160 train / 40 dev / 40 test examples per locale.
* ``tests/data/massive-mini/data/<locale>.jsonl``: 5 locales, 5 intents,
  40 train / 10 dev / 10 test examples per locale (a subset of the sample above).
* ``kdcli/resources/verify_sentences.jsonl``: short everyday sentences in many
  languages and scripts, used to check exported models on real text.

Every record has MASSIVE 1.1's core fields (``id``, ``locale``, ``partition``, ``scenario``,
``intent``, ``utt``, ``annot_utt``). Like MASSIVE, the data is parallel: an ``id`` has the same
intent, template, slot values (translated) and partition in every locale.

Template syntax (templates are written in MASSIVE's annotated form):

* ``{slot}`` / ``{slot.form}``: a slot value from ``SLOT_VALUES[locale][slot]``; the value is
  rendered as ``[slot : value]``. A value is a string, or a dict of grammatical forms (e.g.
  Russian cases) picked by ``.form`` (``base`` when no form is given).
* Inside a value, ``<...>`` marks the part that is annotated; text outside it (articles,
  prepositions, postpositions) stays outside the brackets: ``"on <monday>"`` renders as
  ``on [date : monday]``.
* A literal ``[slot : value]`` in a template is a fixed annotated span.

The output is byte-identical on every run. Run from anywhere::

    python scripts/make_sample_data.py

All text here was written for kdcli and is dedicated to the public domain (CC0 1.0).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import unicodedata
from collections import Counter
from pathlib import Path

SEED = 20240611
REPO_ROOT = Path(__file__).resolve().parents[1]

SAMPLE_DIR = Path("examples/data/massive-sample/data")
MINI_DIR = Path("tests/data/massive-mini/data")
VERIFY_PATH = Path("kdcli/resources/verify_sentences.jsonl")

LOCALES = [
    "en-US", "de-DE", "fr-FR", "es-ES", "ru-RU",
    "ar-SA", "hi-IN", "ja-JP", "zh-CN", "sw-KE",
]  # fmt: skip
MINI_LOCALES = ["en-US", "de-DE", "ja-JP", "ar-SA", "ru-RU"]

# Real MASSIVE intent names and their scenarios.
INTENTS: dict[str, str] = {
    "alarm_set": "alarm",
    "alarm_query": "alarm",
    "weather_query": "weather",
    "play_music": "play",
    "calendar_set": "calendar",
    "datetime_query": "datetime",
    "takeaway_order": "takeaway",
    "iot_hue_lightoff": "iot",
    "news_query": "news",
    "transport_ticket": "transport",
}
MINI_INTENTS = ["alarm_set", "weather_query", "play_music", "datetime_query", "takeaway_order"]

# Examples per intent and partition.
SAMPLE_SPLIT = {"train": 16, "dev": 4, "test": 4}
MINI_SPLIT = {"train": 8, "dev": 2, "test": 2}
PARTITIONS = ("train", "dev", "test")

# Expected Unicode script (prefix of unicodedata.name) of every letter, per locale.
SCRIPTS: dict[str, tuple[str, ...]] = {
    "en-US": ("LATIN",),
    "de-DE": ("LATIN",),
    "fr-FR": ("LATIN",),
    "es-ES": ("LATIN",),
    "sw-KE": ("LATIN",),
    "ru-RU": ("CYRILLIC",),
    "ar-SA": ("ARABIC",),
    "hi-IN": ("DEVANAGARI",),
    "ja-JP": ("CJK UNIFIED", "HIRAGANA", "KATAKANA"),
    "zh-CN": ("CJK UNIFIED",),
}

Value = str | dict[str, str]

# ---------------------------------------------------------------------------------------------
# Slot values. Lists are parallel: index i means the same thing in every locale.
# ---------------------------------------------------------------------------------------------

# Russian city forms: base (nominative), "in" (prepositional, after в), "gen" (after до / из).
_RU_CITIES = [
    ("лондон", "лондоне", "лондона"),
    ("париж", "париже", "парижа"),
    ("токио", "токио", "токио"),
    ("нью-йорк", "нью-йорке", "нью-йорка"),
    ("берлин", "берлине", "берлина"),
    ("рим", "риме", "рима"),
    ("найроби", "найроби", "найроби"),
    ("мумбаи", "мумбаи", "мумбаи"),
]
# Russian artist forms: base, gen (песни кого), acc (послушать кого).
_RU_ARTISTS = [
    ("адель", "адель", "адель"),
    ("эд ширан", "эда ширана", "эда ширана"),
    ("шакира", "шакиры", "шакиру"),
    ("боб марли", "боба марли", "боба марли"),
    ("колдплей", "колдплей", "колдплей"),
    ("тейлор свифт", "тейлор свифт", "тейлор свифт"),
    ("бтс", "бтс", "бтс"),
    ("бейонсе", "бейонсе", "бейонсе"),
]
_FR_ARTISTS = ["adele", "ed sheeran", "shakira", "bob marley", "coldplay", "taylor swift", "bts",
               "beyoncé"]  # fmt: skip


def _fr_de(name: str) -> str:
    """French "de" + name, with elision before a vowel."""
    return f"d'<{name}>" if name[0] in "aeiouy" else f"de <{name}>"


# fmt: off
SLOT_VALUES: dict[str, dict[str, list[Value]]] = {
    "en-US": {
        "time": ["six am", "six thirty am", "seven am", "seven fifteen am", "eight am", "noon",
                 "five thirty pm", "nine pm"],
        "date": ["tomorrow", "today", "on <monday>", "on <friday>", "on <saturday>",
                 "next tuesday", "this weekend", "on <sunday>"],
        "place_name": ["london", "paris", "tokyo", "new york", "berlin", "rome", "nairobi",
                       "mumbai"],
        "artist_name": ["adele", "ed sheeran", "shakira", "bob marley", "coldplay",
                        "taylor swift", "bts", "beyonce"],
        "music_genre": ["jazz", "rock", "classical", "hip hop", "reggae", "pop"],
        "event_name": ["my <dentist appointment>", "the <team meeting>", "lunch with mom",
                       "my <doctor's appointment>", "yoga class", "the <birthday party>"],
        "food_type": ["a <pizza>", "some <sushi>", "a <chicken curry>", "a <burger>",
                      "fish and chips", "some <falafel>", "some <fried rice>", "a <shawarma>"],
        "house_place": ["bedroom", "living room", "bathroom", "hallway", "office", "dining room"],
        "news_topic": ["sports", "politics", "technology", "business", "science", "health"],
    },
    "de-DE": {
        "time": ["sechs uhr morgens", "halb sieben morgens", "sieben uhr morgens",
                 "viertel nach sieben morgens", "acht uhr morgens", "zwölf uhr mittags",
                 "halb sechs abends", "neun uhr abends"],
        "date": ["morgen", "heute", "am <montag>", "am <freitag>", "am <samstag>",
                 "nächsten dienstag", "dieses wochenende", "am <sonntag>"],
        "place_name": ["london", "paris", "tokio", "new york", "berlin", "rom", "nairobi",
                       "mumbai"],
        "artist_name": ["adele", "ed sheeran", "shakira", "bob marley", "coldplay",
                        "taylor swift", "bts", "beyonce"],
        "music_genre": ["jazz", "rock", "klassik", "hip hop", "reggae", "pop"],
        "event_name": ["meinen <zahnarzttermin>", "das <teammeeting>",
                       "das <mittagessen mit mama>", "meinen <arzttermin>", "den <yogakurs>",
                       "die <geburtstagsfeier>"],
        "food_type": ["eine <pizza>", "sushi", "ein <hähnchencurry>", "einen <burger>",
                      "fish and chips", "falafel", "gebratenen reis", "ein <schawarma>"],
        "house_place": ["schlafzimmer", "wohnzimmer", "badezimmer", "flur", "arbeitszimmer",
                        "esszimmer"],
        "news_topic": ["sport", "politik", "technik", "wirtschaft", "wissenschaft",
                       "gesundheit"],
    },
    "fr-FR": {
        "time": ["six heures du matin", "six heures et demie du matin", "sept heures du matin",
                 "sept heures et quart du matin", "huit heures du matin", "midi",
                 "dix-sept heures trente", "vingt et une heures"],
        "date": ["demain", "aujourd'hui", "lundi", "vendredi", "samedi", "mardi prochain",
                 "ce week-end", "dimanche"],
        "place_name": ["londres", "paris", "tokyo", "new york", "berlin", "rome", "nairobi",
                       "mumbai"],
        "artist_name": [{"base": name, "de": _fr_de(name)} for name in _FR_ARTISTS],
        "music_genre": [
            {"base": "jazz", "part": "du <jazz>"},
            {"base": "rock", "part": "du <rock>"},
            {"base": "classique", "part": "du <classique>"},
            {"base": "hip-hop", "part": "du <hip-hop>"},
            {"base": "reggae", "part": "du <reggae>"},
            {"base": "pop", "part": "de la <pop>"},
        ],
        "event_name": ["mon <rendez-vous chez le dentiste>", "la <réunion d'équipe>",
                       "le <déjeuner avec maman>", "mon <rendez-vous chez le médecin>",
                       "le <cours de yoga>", "la <fête d'anniversaire>"],
        "food_type": ["une <pizza>", "des <sushis>", "un <poulet au curry>", "un <burger>",
                      "un <fish and chips>", "des <falafels>", "du <riz frit>",
                      "un <shawarma>"],
        "house_place": ["dans la <chambre>", "dans le <salon>", "dans la <salle de bain>",
                        "dans le <couloir>", "dans le <bureau>", "dans la <salle à manger>"],
        "news_topic": ["du <sport>", "de la <politique>", "de la <technologie>",
                       "de l'<économie>", "de la <science>", "de la <santé>"],
    },
    "es-ES": {
        "time": ["las seis de la mañana", "las seis y media de la mañana",
                 "las siete de la mañana", "las siete y cuarto de la mañana",
                 "las ocho de la mañana", "las doce del mediodía",
                 "las cinco y media de la tarde", "las nueve de la noche"],
        "date": ["mañana", "hoy", "el <lunes>", "el <viernes>", "el <sábado>",
                 "el <próximo martes>", "este fin de semana", "el <domingo>"],
        "place_name": ["londres", "parís", "tokio", "nueva york", "berlín", "roma", "nairobi",
                       "bombay"],
        "artist_name": ["adele", "ed sheeran", "shakira", "bob marley", "coldplay",
                        "taylor swift", "bts", "beyoncé"],
        "music_genre": ["jazz", "rock", "clásica", "hip hop", "reggae", "pop"],
        "event_name": ["mi <cita con el dentista>", "la <reunión de equipo>",
                       "el <almuerzo con mamá>", "mi <cita con el médico>",
                       "la <clase de yoga>", "la <fiesta de cumpleaños>"],
        "food_type": ["una <pizza>", "sushi", "un <pollo al curry>", "una <hamburguesa>",
                      "fish and chips", "falafel", "arroz frito", "un <shawarma>"],
        "house_place": ["dormitorio", "salón", "baño", "pasillo", "despacho", "comedor"],
        "news_topic": ["deportes", "política", "tecnología", "negocios", "ciencia", "salud"],
    },
    "ru-RU": {
        "time": ["шесть утра", "шесть тридцать утра", "семь утра", "семь пятнадцать утра",
                 "восемь утра", "полдень", "пять тридцать вечера", "девять вечера"],
        "date": ["завтра", "сегодня", "в <понедельник>", "в <пятницу>", "в <субботу>",
                 "в <следующий вторник>", "в <эти выходные>", "в <воскресенье>"],
        "place_name": [{"base": b, "in": i, "gen": g} for b, i, g in _RU_CITIES],
        "artist_name": [{"base": b, "gen": g, "acc": a} for b, g, a in _RU_ARTISTS],
        "music_genre": [
            {"base": "джаз", "acc": "джаз"},
            {"base": "рок", "acc": "рок"},
            {"base": "классика", "acc": "классику"},
            {"base": "хип-хоп", "acc": "хип-хоп"},
            {"base": "регги", "acc": "регги"},
            {"base": "поп", "acc": "поп-музыку"},
        ],
        # Accusative (добавь что / напомни про что).
        "event_name": ["прием у стоматолога", "планерку", "обед с мамой", "прием у врача",
                       "занятие йогой", "день рождения"],
        # Accusative (закажи что).
        "food_type": ["пиццу", "суши", "курицу карри", "бургер", "фиш-энд-чипс", "фалафель",
                      "жареный рис", "шаурму"],
        # Prepositional (в чем).
        "house_place": ["спальне", "гостиной", "ванной", "коридоре", "кабинете", "столовой"],
        # Genitive (новости чего).
        "news_topic": ["спорта", "политики", "технологий", "бизнеса", "науки", "здоровья"],
    },
    "ar-SA": {
        "time": ["السادسة صباحا", "السادسة والنصف صباحا", "السابعة صباحا",
                 "السابعة والربع صباحا", "الثامنة صباحا", "الثانية عشرة ظهرا",
                 "الخامسة والنصف مساء", "التاسعة مساء"],
        "date": ["غدا", "اليوم", "يوم <الاثنين>", "يوم <الجمعة>", "يوم <السبت>",
                 "الثلاثاء القادم", "في <نهاية هذا الأسبوع>", "يوم <الأحد>"],
        "place_name": ["لندن", "باريس", "طوكيو", "نيويورك", "برلين", "روما", "نيروبي",
                       "مومباي"],
        "artist_name": ["أديل", "إد شيران", "شاكيرا", "بوب مارلي", "كولدبلاي", "تايلور سويفت",
                        "بي تي إس", "بيونسيه"],
        "music_genre": ["الجاز", "الروك", "الكلاسيك", "الهيب هوب", "الريغي", "البوب"],
        "event_name": ["موعد طبيب الأسنان", "اجتماع الفريق", "الغداء مع أمي", "موعد الطبيب",
                       "حصة اليوغا", "حفلة عيد الميلاد"],
        "food_type": ["بيتزا", "سوشي", "دجاج بالكاري", "برغر", "سمك وبطاطا مقلية", "فلافل",
                      "أرز مقلي", "شاورما"],
        "house_place": ["غرفة النوم", "غرفة المعيشة", "الحمام", "الممر", "المكتب",
                        "غرفة الطعام"],
        "news_topic": ["الرياضة", "السياسة", "التكنولوجيا", "الاقتصاد", "العلوم", "الصحة"],
    },
    "hi-IN": {
        "time": ["सुबह छह बजे", "सुबह साढ़े छह बजे", "सुबह सात बजे", "सुबह सवा सात बजे",
                 "सुबह आठ बजे", "दोपहर बारह बजे", "शाम साढ़े पांच बजे", "रात नौ बजे"],
        "date": ["कल", "आज", "<सोमवार> को", "<शुक्रवार> को", "<शनिवार> को",
                 "<अगले मंगलवार> को", "इस वीकेंड", "<रविवार> को"],
        "place_name": ["लंदन", "पेरिस", "टोक्यो", "न्यूयॉर्क", "बर्लिन", "रोम", "नैरोबी",
                       "मुंबई"],
        "artist_name": ["एडेल", "एड शीरन", "शकीरा", "बॉब मार्ले", "कोल्डप्ले", "टेलर स्विफ्ट",
                        "बीटीएस", "बियॉन्से"],
        "music_genre": ["जैज़", "रॉक", "क्लासिकल", "हिप हॉप", "रेगे", "पॉप"],
        "event_name": ["डेंटिस्ट अपॉइंटमेंट", "टीम मीटिंग", "मम्मी के साथ लंच",
                       "डॉक्टर अपॉइंटमेंट", "योगा क्लास", "बर्थडे पार्टी"],
        "food_type": ["पिज़्ज़ा", "सुशी", "चिकन करी", "बर्गर", "फिश एंड चिप्स", "फलाफल",
                      "फ्राइड राइस", "शवार्मा"],
        "house_place": ["बेडरूम", "लिविंग रूम", "बाथरूम", "हॉलवे", "ऑफिस", "डाइनिंग रूम"],
        "news_topic": ["खेल", "राजनीति", "टेक्नोलॉजी", "बिज़नेस", "विज्ञान", "स्वास्थ्य"],
    },
    "ja-JP": {
        "time": ["午前六時", "午前六時半", "午前七時", "午前七時十五分", "午前八時", "正午",
                 "午後五時半", "午後九時"],
        "date": ["明日", "今日", "月曜日", "金曜日", "土曜日", "来週の火曜日", "今週末",
                 "日曜日"],
        "place_name": ["ロンドン", "パリ", "東京", "ニューヨーク", "ベルリン", "ローマ",
                       "ナイロビ", "ムンバイ"],
        "artist_name": ["アデル", "エド・シーラン", "シャキーラ", "ボブ・マーリー",
                        "コールドプレイ", "テイラー・スウィフト", "防弾少年団", "ビヨンセ"],
        "music_genre": ["ジャズ", "ロック", "クラシック", "ヒップホップ", "レゲエ", "ポップ"],
        "event_name": ["歯医者の予約", "チームミーティング", "母とのランチ", "病院の予約",
                       "ヨガのクラス", "誕生日パーティー"],
        "food_type": ["ピザ", "寿司", "チキンカレー", "ハンバーガー", "フィッシュアンドチップス",
                      "ファラフェル", "チャーハン", "シャワルマ"],
        "house_place": ["寝室", "リビング", "浴室", "廊下", "書斎", "ダイニング"],
        "news_topic": ["スポーツ", "政治", "テクノロジー", "ビジネス", "科学", "健康"],
    },
    "zh-CN": {
        "time": ["早上六点", "早上六点半", "早上七点", "早上七点一刻", "早上八点", "中午十二点",
                 "下午五点半", "晚上九点"],
        "date": ["明天", "今天", "星期一", "星期五", "星期六", "下星期二", "这个周末",
                 "星期天"],
        "place_name": ["伦敦", "巴黎", "东京", "纽约", "柏林", "罗马", "内罗毕", "孟买"],
        "artist_name": ["阿黛尔", "艾德·希兰", "夏奇拉", "鲍勃·马利", "酷玩乐队",
                        "泰勒·斯威夫特", "防弹少年团", "碧昂丝"],
        "music_genre": ["爵士", "摇滚", "古典", "嘻哈", "雷鬼", "流行"],
        "event_name": ["牙医预约", "团队会议", "和妈妈的午餐", "医生预约", "瑜伽课",
                       "生日派对"],
        "food_type": ["披萨", "寿司", "咖喱鸡", "汉堡", "炸鱼薯条", "法拉费", "炒饭",
                      "沙威玛"],
        "house_place": ["卧室", "客厅", "浴室", "走廊", "书房", "餐厅"],
        "news_topic": ["体育", "政治", "科技", "财经", "科学", "健康"],
    },
    "sw-KE": {
        # Swahili time counts hours from 6 am / 6 pm: 7 am is "saa moja asubuhi".
        "time": ["saa kumi na mbili asubuhi", "saa kumi na mbili na nusu asubuhi",
                 "saa moja asubuhi", "saa moja na robo asubuhi", "saa mbili asubuhi",
                 "saa sita mchana", "saa kumi na moja na nusu jioni", "saa tatu usiku"],
        "date": ["kesho", "leo", "jumatatu", "ijumaa", "jumamosi", "jumanne ijayo",
                 "wikendi hii", "jumapili"],
        "place_name": ["london", "paris", "tokyo", "new york", "berlin", "roma", "nairobi",
                       "mumbai"],
        "artist_name": ["adele", "ed sheeran", "shakira", "bob marley", "coldplay",
                        "taylor swift", "bts", "beyonce"],
        "music_genre": ["jazz", "rock", "klasiki", "hip hop", "reggae", "pop"],
        "event_name": ["miadi ya daktari wa meno", "mkutano wa timu",
                       "chakula cha mchana na mama", "miadi ya daktari", "darasa la yoga",
                       "sherehe ya siku ya kuzaliwa"],
        "food_type": ["pizza", "sushi", "kari ya kuku", "baga", "samaki na chipsi", "falafel",
                      "wali wa kukaanga", "shawarma"],
        "house_place": ["chumba cha kulala", "sebule", "bafu", "korido", "ofisi",
                        "chumba cha kulia"],
        "news_topic": ["michezo", "siasa", "teknolojia", "biashara", "sayansi", "afya"],
    },
}
# fmt: on

# ---------------------------------------------------------------------------------------------
# Templates: intent -> locale -> list. Index i is the same sentence in every locale.
# ---------------------------------------------------------------------------------------------

TEMPLATES: dict[str, dict[str, list[str]]] = {
    "alarm_set": {
        "en-US": [
            "wake me up at {time}",
            "set an alarm for {time}",
            "set an alarm for {time} {date}",
            "please set my alarm to {time}",
            "wake me up {date} at {time}",
        ],
        "de-DE": [
            "weck mich um {time}",
            "stell einen wecker für {time}",
            "stell einen wecker für {time} {date}",
            "bitte stell meinen wecker auf {time}",
            "weck mich {date} um {time}",
        ],
        "fr-FR": [
            "réveille-moi à {time}",
            "mets une alarme à {time}",
            "mets une alarme à {time} {date}",
            "règle mon réveil sur {time} s'il te plaît",
            "réveille-moi {date} à {time}",
        ],
        "es-ES": [
            "despiértame a {time}",
            "pon una alarma para {time}",
            "pon una alarma para {time} {date}",
            "por favor configura mi alarma a {time}",
            "despiértame {date} a {time}",
        ],
        "ru-RU": [
            "разбуди меня в {time}",
            "поставь будильник на {time}",
            "поставь будильник на {time} {date}",
            "пожалуйста установи мой будильник на {time}",
            "разбуди меня {date} в {time}",
        ],
        "ar-SA": [
            "أيقظني الساعة {time}",
            "اضبط منبها على الساعة {time}",
            "اضبط منبها على الساعة {time} {date}",
            "من فضلك اضبط المنبه على الساعة {time}",
            "أيقظني {date} الساعة {time}",
        ],
        "hi-IN": [
            "मुझे {time} जगा देना",
            "{time} का अलार्म लगाओ",
            "{date} {time} का अलार्म लगाओ",
            "कृपया मेरा अलार्म {time} पर सेट कर दो",
            "मुझे {date} {time} जगा देना",
        ],
        "ja-JP": [
            "{time}に起こして",
            "{time}にアラームをセットして",
            "{date}の{time}にアラームをセットして",
            "アラームを{time}に設定してください",
            "{date}は{time}に起こして",
        ],
        "zh-CN": [
            "{time}叫醒我",
            "设一个{time}的闹钟",
            "设一个{date}{time}的闹钟",
            "请把我的闹钟设到{time}",
            "{date}{time}叫醒我",
        ],
        "sw-KE": [
            "niamshe {time}",
            "weka kengele ya {time}",
            "weka kengele ya {time} {date}",
            "tafadhali weka kengele yangu {time}",
            "niamshe {date} {time}",
        ],
    },
    "alarm_query": {
        "en-US": [
            "what alarms do i have {date}",
            "did i set an alarm for {time}",
            "show me my alarms {date}",
            "is my alarm set for {time} {date}",
            "what time is my alarm {date}",
        ],
        "de-DE": [
            "welche wecker habe ich {date}",
            "habe ich einen wecker für {time} gestellt",
            "zeig mir meine wecker {date}",
            "ist mein wecker {date} auf {time} gestellt",
            "wann klingelt mein wecker {date}",
        ],
        "fr-FR": [
            "quelles alarmes ai-je {date}",
            "est-ce que j'ai mis une alarme à {time}",
            "montre-moi mes alarmes {date}",
            "mon alarme est-elle réglée sur {time} {date}",
            "à quelle heure sonne mon réveil {date}",
        ],
        "es-ES": [
            "qué alarmas tengo {date}",
            "puse una alarma para {time}",
            "muéstrame mis alarmas {date}",
            "está mi alarma puesta para {time} {date}",
            "a qué hora suena mi alarma {date}",
        ],
        "ru-RU": [
            "какие будильники у меня стоят {date}",
            "я ставил будильник на {time}",
            "покажи мои будильники {date}",
            "стоит ли мой будильник на {time} {date}",
            "во сколько зазвонит мой будильник {date}",
        ],
        "ar-SA": [
            "ما هي المنبهات التي لدي {date}",
            "هل ضبطت منبها على الساعة {time}",
            "اعرض لي منبهاتي {date}",
            "هل المنبه مضبوط على الساعة {time} {date}",
            "متى سيرن المنبه {date}",
        ],
        "hi-IN": [
            "{date} मेरे कौन कौन से अलार्म लगे हैं",
            "क्या मैंने {time} का अलार्म लगाया था",
            "मुझे मेरे अलार्म दिखाओ जो {date} बजेंगे",
            "क्या {date} {time} का अलार्म लगा है",
            "{date} मेरा अलार्म कितने बजे बजेगा",
        ],
        "ja-JP": [
            "{date}のアラームは何件ある",
            "{time}にアラームをセットしたっけ",
            "{date}のアラームを見せて",
            "{date}の{time}にアラームはセットされてる",
            "{date}のアラームは何時に鳴る",
        ],
        "zh-CN": [
            "我{date}有哪些闹钟",
            "我设了{time}的闹钟吗",
            "给我看看{date}的闹钟",
            "{date}{time}的闹钟设好了吗",
            "我{date}的闹钟几点响",
        ],
        "sw-KE": [
            "nina kengele zipi {date}",
            "je niliweka kengele ya {time}",
            "nionyeshe kengele zangu za {date}",
            "je kengele yangu imewekwa {time} {date}",
            "kengele yangu italia saa ngapi {date}",
        ],
    },
    "weather_query": {
        "en-US": [
            "what's the weather like in {place_name} {date}",
            "will it [weather_descriptor : rain] {date}",
            "how [weather_descriptor : hot] will it be in {place_name} {date}",
            "do i need an [weather_descriptor : umbrella] {date}",
            "weather forecast for {place_name}",
        ],
        "de-DE": [
            "wie wird das wetter in {place_name} {date}",
            "wird es {date} [weather_descriptor : regnen]",
            "wie [weather_descriptor : heiß] wird es {date} in {place_name}",
            "brauche ich {date} einen [weather_descriptor : regenschirm]",
            "wettervorhersage für {place_name}",
        ],
        "fr-FR": [
            "quel temps fera-t-il à {place_name} {date}",
            "est-ce qu'il va [weather_descriptor : pleuvoir] {date}",
            "est-ce qu'il fera très [weather_descriptor : chaud] à {place_name} {date}",
            "ai-je besoin d'un [weather_descriptor : parapluie] {date}",
            "prévisions météo pour {place_name}",
        ],
        "es-ES": [
            "qué tiempo hará en {place_name} {date}",
            "va a [weather_descriptor : llover] {date}",
            "hará mucho [weather_descriptor : calor] en {place_name} {date}",
            "necesito un [weather_descriptor : paraguas] {date}",
            "pronóstico del tiempo para {place_name}",
        ],
        "ru-RU": [
            "какая погода будет в {place_name.in} {date}",
            "будет ли {date} [weather_descriptor : дождь]",
            "насколько [weather_descriptor : жарко] будет в {place_name.in} {date}",
            "нужен ли мне {date} [weather_descriptor : зонт]",
            "прогноз погоды для {place_name.gen}",
        ],
        "ar-SA": [
            "كيف سيكون الطقس في {place_name} {date}",
            "هل [weather_descriptor : ستمطر] {date}",
            "ما مدى [weather_descriptor : الحرارة] في {place_name} {date}",
            "هل أحتاج إلى [weather_descriptor : مظلة] {date}",
            "توقعات الطقس في {place_name}",
        ],
        "hi-IN": [
            "{date} {place_name} में मौसम कैसा रहेगा",
            "क्या {date} [weather_descriptor : बारिश] होगी",
            "{date} {place_name} में कितनी [weather_descriptor : गर्मी] होगी",
            "क्या मुझे {date} [weather_descriptor : छाते] की ज़रूरत पड़ेगी",
            "{place_name} का मौसम पूर्वानुमान",
        ],
        "ja-JP": [
            "{date}の{place_name}の天気はどう",
            "{date}は[weather_descriptor : 雨]が降りますか",
            "{date}の{place_name}はどのくらい[weather_descriptor : 暑い]",
            "{date}は[weather_descriptor : 傘]が必要",
            "{place_name}の天気予報",
        ],
        "zh-CN": [
            "{date}{place_name}天气怎么样",
            "{date}会[weather_descriptor : 下雨]吗",
            "{date}{place_name}会有多[weather_descriptor : 热]",
            "{date}我需要带[weather_descriptor : 伞]吗",
            "{place_name}的天气预报",
        ],
        "sw-KE": [
            "hali ya hewa itakuwaje {place_name} {date}",
            "je [weather_descriptor : mvua] itanyesha {date}",
            "kutakuwa na [weather_descriptor : joto] kiasi gani {place_name} {date}",
            "je nitahitaji [weather_descriptor : mwavuli] {date}",
            "utabiri wa hali ya hewa wa {place_name}",
        ],
    },
    "play_music": {
        "en-US": [
            "play some {music_genre}",
            "play songs by {artist_name}",
            "i want to listen to {artist_name}",
            "put on some {music_genre} music",
            "play the latest album by {artist_name}",
        ],
        "de-DE": [
            "spiel etwas {music_genre}",
            "spiel lieder von {artist_name}",
            "ich möchte {artist_name} hören",
            "mach bitte {music_genre} an",
            "spiel das neueste album von {artist_name}",
        ],
        "fr-FR": [
            "mets {music_genre.part}",
            "joue des chansons {artist_name.de}",
            "je veux écouter {artist_name}",
            "lance de la musique {music_genre}",
            "joue le dernier album {artist_name.de}",
        ],
        "es-ES": [
            "pon algo de {music_genre}",
            "reproduce canciones de {artist_name}",
            "quiero escuchar a {artist_name}",
            "pon un poco de música {music_genre}",
            "reproduce el último álbum de {artist_name}",
        ],
        "ru-RU": [
            "включи {music_genre.acc}",
            "включи песни {artist_name.gen}",
            "хочу послушать {artist_name.acc}",
            "поставь музыку в стиле {music_genre}",
            "включи последний альбом {artist_name.gen}",
        ],
        "ar-SA": [
            "شغل بعض موسيقى {music_genre}",
            "شغل أغاني {artist_name}",
            "أريد الاستماع إلى {artist_name}",
            "ضع موسيقى {music_genre}",
            "شغل آخر ألبوم أصدره {artist_name}",
        ],
        "hi-IN": [
            "कुछ {music_genre} म्यूज़िक चलाओ",
            "{artist_name} के गाने चलाओ",
            "मुझे {artist_name} को सुनना है",
            "{music_genre} संगीत लगा दो",
            "{artist_name} का नया एल्बम चलाओ",
        ],
        "ja-JP": [
            "{music_genre}をかけて",
            "{artist_name}の曲を再生して",
            "{artist_name}が聴きたい",
            "{music_genre}の音楽を流して",
            "{artist_name}の最新アルバムを再生して",
        ],
        "zh-CN": [
            "放点{music_genre}音乐",
            "播放{artist_name}的歌",
            "我想听{artist_name}",
            "来一些{music_genre}风格的歌",
            "播放{artist_name}的最新专辑",
        ],
        "sw-KE": [
            "cheza muziki wa {music_genre}",
            "cheza nyimbo za {artist_name}",
            "nataka kumsikiliza {artist_name}",
            "nipigie muziki wa {music_genre}",
            "cheza albamu mpya zaidi ya {artist_name}",
        ],
    },
    "calendar_set": {
        "en-US": [
            "add {event_name} to my calendar {date}",
            "schedule {event_name} at {time} {date}",
            "remind me about {event_name} {date}",
            "put {event_name} in my calendar at {time}",
            "remind me of {event_name} {date} at {time}",
        ],
        "de-DE": [
            "trag {event_name} {date} in meinen kalender ein",
            "plane {event_name} {date} um {time} ein",
            "erinnere mich {date} an {event_name}",
            "setz {event_name} um {time} in meinen kalender",
            "erinnere mich {date} um {time} an {event_name}",
        ],
        "fr-FR": [
            "ajoute {event_name} à mon agenda {date}",
            "programme {event_name} {date} à {time}",
            "rappelle-moi {event_name} {date}",
            "mets {event_name} dans mon agenda à {time}",
            "rappelle-moi {event_name} {date} à {time}",
        ],
        "es-ES": [
            "añade {event_name} a mi calendario {date}",
            "programa {event_name} {date} a {time}",
            "recuérdame {event_name} {date}",
            "pon {event_name} en mi calendario a {time}",
            "recuérdame {event_name} {date} a {time}",
        ],
        "ru-RU": [
            "добавь {event_name} в мой календарь {date}",
            "запланируй {event_name} {date} на {time}",
            "напомни мне про {event_name} {date}",
            "внеси {event_name} в календарь на {time}",
            "напомни про {event_name} {date} в {time}",
        ],
        "ar-SA": [
            "أضف {event_name} إلى تقويمي {date}",
            "جدول {event_name} {date} الساعة {time}",
            "ذكرني بخصوص {event_name} {date}",
            "ضع {event_name} في تقويمي الساعة {time}",
            "ذكرني بخصوص {event_name} {date} الساعة {time}",
        ],
        "hi-IN": [
            "मेरे कैलेंडर में {date} {event_name} जोड़ दो",
            "{date} {time} {event_name} शेड्यूल करो",
            "मुझे {date} {event_name} के बारे में याद दिलाना",
            "{time} के लिए कैलेंडर में {event_name} डाल दो",
            "मुझे {date} {time} {event_name} की याद दिलाना",
        ],
        "ja-JP": [
            "{date}の予定に{event_name}を追加して",
            "{date}の{time}に{event_name}を入れて",
            "{date}の{event_name}をリマインドして",
            "{time}に{event_name}をカレンダーに登録して",
            "{date}の{time}に{event_name}のことを知らせて",
        ],
        "zh-CN": [
            "把{date}的{event_name}加到我的日历上",
            "安排{date}{time}的{event_name}",
            "{date}提醒我{event_name}",
            "在日历上添加{time}的{event_name}",
            "{date}{time}提醒我{event_name}",
        ],
        "sw-KE": [
            "ongeza {event_name} kwenye kalenda yangu {date}",
            "panga {event_name} {date} {time}",
            "nikumbushe kuhusu {event_name} {date}",
            "weka {event_name} kwenye kalenda {time}",
            "nikumbushe {event_name} {date} {time}",
        ],
    },
    "datetime_query": {
        "en-US": [
            "what time is it in {place_name}",
            "tell me the current time in {place_name}",
            "what time zone is {place_name} in",
            "what's the date {date}",
            "if it's {time} here what time is it in {place_name}",
        ],
        "de-DE": [
            "wie spät ist es in {place_name}",
            "sag mir die aktuelle uhrzeit in {place_name}",
            "in welcher zeitzone liegt {place_name}",
            "welches datum ist {date}",
            "wenn es hier {time} ist wie spät ist es dann in {place_name}",
        ],
        "fr-FR": [
            "quelle heure est-il à {place_name}",
            "donne-moi l'heure actuelle à {place_name}",
            "dans quel fuseau horaire se trouve {place_name}",
            "c'est quelle date {date}",
            "s'il est {time} ici quelle heure est-il à {place_name}",
        ],
        "es-ES": [
            "qué hora es en {place_name}",
            "dime la hora actual en {place_name}",
            "en qué zona horaria está {place_name}",
            "qué fecha es {date}",
            "si aquí son {time} qué hora es en {place_name}",
        ],
        "ru-RU": [
            "который час в {place_name.in}",
            "скажи текущее время в {place_name.in}",
            "в каком часовом поясе находится {place_name}",
            "какое число {date}",
            "если здесь {time} то сколько времени в {place_name.in}",
        ],
        "ar-SA": [
            "كم الساعة في {place_name}",
            "أخبرني بالوقت الحالي في {place_name}",
            "في أي منطقة زمنية تقع {place_name}",
            "ما هو التاريخ {date}",
            "إذا كانت الساعة هنا {time} فكم الساعة في {place_name}",
        ],
        "hi-IN": [
            "{place_name} में क्या समय हुआ है",
            "मुझे {place_name} का अभी का समय बताओ",
            "{place_name} किस टाइम ज़ोन में है",
            "{date} कौन सी तारीख है",
            "अगर यहाँ {time} हैं तो {place_name} में क्या समय होगा",
        ],
        "ja-JP": [
            "{place_name}は今何時",
            "{place_name}の現在時刻を教えて",
            "{place_name}はどのタイムゾーンにある",
            "{date}は何日",
            "ここが{time}なら{place_name}は何時",
        ],
        "zh-CN": [
            "{place_name}现在几点",
            "告诉我{place_name}的当前时间",
            "{place_name}在哪个时区",
            "{date}是几号",
            "如果这里是{time}那{place_name}是几点",
        ],
        "sw-KE": [
            "ni saa ngapi {place_name} sasa",
            "niambie saa ya sasa huko {place_name}",
            "{place_name} iko katika saa za eneo gani",
            "tarehe ni ngapi {date}",
            "ikiwa hapa ni {time} huko {place_name} ni saa ngapi",
        ],
    },
    "takeaway_order": {
        "en-US": [
            "order {food_type} for delivery",
            "i want to order {food_type} for takeaway",
            "get me {food_type} delivered by {time}",
            "place a takeaway order for {food_type}",
            "i'm hungry order me {food_type}",
        ],
        "de-DE": [
            "bestell {food_type} mit lieferung",
            "ich möchte {food_type} zum mitnehmen bestellen",
            "lass mir bis {time} {food_type} liefern",
            "gib eine bestellung zum mitnehmen für {food_type} auf",
            "ich habe hunger bestell mir {food_type}",
        ],
        "fr-FR": [
            "commande {food_type} en livraison",
            "je veux commander {food_type} à emporter",
            "fais-moi livrer {food_type} pour {time}",
            "passe une commande à emporter pour {food_type}",
            "j'ai faim commande-moi {food_type}",
        ],
        "es-ES": [
            "pide {food_type} a domicilio",
            "quiero pedir {food_type} para llevar",
            "que me traigan {food_type} antes de {time}",
            "haz un pedido para llevar de {food_type}",
            "tengo hambre pídeme {food_type}",
        ],
        "ru-RU": [
            "закажи {food_type} с доставкой",
            "хочу заказать {food_type} навынос",
            "закажи мне {food_type} с доставкой на {time}",
            "оформи заказ на {food_type} навынос",
            "я голоден закажи мне {food_type}",
        ],
        "ar-SA": [
            "اطلب {food_type} مع التوصيل",
            "أريد أن أطلب {food_type} سفري",
            "أوصل لي {food_type} قبل الساعة {time}",
            "سجل طلب {food_type} سفري",
            "أنا جائع اطلب لي {food_type}",
        ],
        "hi-IN": [
            "होम डिलीवरी के लिए {food_type} ऑर्डर करो",
            "मुझे टेकअवे के लिए {food_type} ऑर्डर करना है",
            "{time} तक {food_type} डिलीवर करवा दो",
            "{food_type} का टेकअवे ऑर्डर दे दो",
            "मुझे भूख लगी है मेरे लिए {food_type} मंगवा दो",
        ],
        "ja-JP": [
            "{food_type}を配達で注文して",
            "持ち帰りで{food_type}を注文したい",
            "{time}までに{food_type}を届けてもらって",
            "{food_type}のテイクアウトを注文して",
            "お腹すいたから{food_type}を頼んで",
        ],
        "zh-CN": [
            "帮我点{food_type}外卖",
            "我想点一份{food_type}带走",
            "{time}之前给我送{food_type}",
            "帮我下单一份{food_type}外带",
            "我饿了给我点{food_type}",
        ],
        "sw-KE": [
            "agiza {food_type} kwa ajili ya kuletewa nyumbani",
            "nataka kuagiza {food_type} kwa ajili ya kuchukua",
            "niletee {food_type} kabla ya {time}",
            "weka oda ya kuchukua ya {food_type}",
            "nina njaa niagizie {food_type}",
        ],
    },
    "iot_hue_lightoff": {
        "en-US": [
            "turn off the lights in the {house_place}",
            "switch off the {house_place} light",
            "lights off in the {house_place}",
            "turn off the {house_place} lights at {time}",
            "can you shut off the lights in the {house_place}",
        ],
        "de-DE": [
            "schalte das licht im {house_place} aus",
            "mach das licht im {house_place} aus",
            "licht aus im {house_place}",
            "schalte um {time} das licht im {house_place} aus",
            "kannst du die lampen im {house_place} ausmachen",
        ],
        "fr-FR": [
            "éteins les lumières {house_place}",
            "éteins la lumière {house_place}",
            "coupe la lumière {house_place}",
            "éteins les lumières {house_place} à {time}",
            "tu peux éteindre les lampes {house_place}",
        ],
        "es-ES": [
            "apaga las luces del {house_place}",
            "apaga la luz del {house_place}",
            "desconecta las luces en el {house_place}",
            "apaga las luces del {house_place} a {time}",
            "puedes apagar las lámparas del {house_place}",
        ],
        "ru-RU": [
            "выключи свет в {house_place}",
            "погаси свет в {house_place}",
            "отключи освещение в {house_place}",
            "выключи свет в {house_place} в {time}",
            "можешь выключить лампы в {house_place}",
        ],
        "ar-SA": [
            "أطفئ الأضواء في {house_place}",
            "أطفئ ضوء {house_place}",
            "أوقف الإنارة في {house_place}",
            "أطفئ أضواء {house_place} الساعة {time}",
            "هل يمكنك إطفاء المصابيح في {house_place}",
        ],
        "hi-IN": [
            "{house_place} की लाइट बंद करो",
            "{house_place} की बत्ती बुझा दो",
            "{house_place} में लाइट्स ऑफ करो",
            "{time} {house_place} की लाइट बंद कर देना",
            "क्या तुम {house_place} की लाइटें बंद कर सकते हो",
        ],
        "ja-JP": [
            "{house_place}の電気を消して",
            "{house_place}のライトをオフにして",
            "{house_place}の照明を切って",
            "{time}に{house_place}の電気を消して",
            "{house_place}の明かりを消してくれる",
        ],
        "zh-CN": [
            "关掉{house_place}的灯",
            "把{house_place}的灯关了",
            "关闭{house_place}的照明",
            "{time}关掉{house_place}的灯",
            "你能把{house_place}的灯关掉吗",
        ],
        "sw-KE": [
            "zima taa za {house_place}",
            "zima taa ya {house_place}",
            "taa za {house_place} zizimwe",
            "zima taa za {house_place} {time}",
            "unaweza kuzima taa za {house_place}",
        ],
    },
    "news_query": {
        "en-US": [
            "what's the latest {news_topic} news",
            "give me the {news_topic} headlines",
            "what's happening in {place_name}",
            "show me {news_topic} news from {place_name}",
            "read me the top {news_topic} stories",
        ],
        "de-DE": [
            "was sind die neuesten nachrichten zum thema {news_topic}",
            "gib mir die schlagzeilen zum thema {news_topic}",
            "was ist gerade in {place_name} los",
            "zeig mir nachrichten aus {place_name} zum thema {news_topic}",
            "lies mir die wichtigsten meldungen zum thema {news_topic} vor",
        ],
        "fr-FR": [
            "quelles sont les dernières actualités {news_topic}",
            "donne-moi les gros titres {news_topic}",
            "que se passe-t-il à {place_name}",
            "montre-moi les infos {news_topic} à {place_name}",
            "lis-moi les principales nouvelles {news_topic}",
        ],
        "es-ES": [
            "cuáles son las últimas noticias de {news_topic}",
            "dame los titulares de {news_topic}",
            "qué está pasando en {place_name}",
            "muéstrame noticias de {news_topic} de {place_name}",
            "léeme las principales noticias de {news_topic}",
        ],
        "ru-RU": [
            "какие последние новости {news_topic}",
            "дай мне заголовки новостей {news_topic}",
            "что происходит в {place_name.in}",
            "покажи новости {news_topic} из {place_name.gen}",
            "прочитай главные новости {news_topic}",
        ],
        "ar-SA": [
            "ما هي آخر أخبار {news_topic}",
            "أعطني عناوين أخبار {news_topic}",
            "ماذا يحدث في {place_name}",
            "اعرض لي أخبار {news_topic} من {place_name}",
            "اقرأ لي أهم أخبار {news_topic}",
        ],
        "hi-IN": [
            "{news_topic} की ताज़ा खबरें क्या हैं",
            "मुझे {news_topic} की सुर्खियां बताओ",
            "{place_name} में क्या हो रहा है",
            "{place_name} से {news_topic} की खबरें दिखाओ",
            "मुझे {news_topic} की मुख्य खबरें पढ़कर सुनाओ",
        ],
        "ja-JP": [
            "{news_topic}の最新ニュースは",
            "{news_topic}のヘッドラインを教えて",
            "{place_name}で何が起きてる",
            "{place_name}の{news_topic}ニュースを見せて",
            "{news_topic}の主要なニュースを読み上げて",
        ],
        "zh-CN": [
            "最新的{news_topic}新闻是什么",
            "给我看{news_topic}头条",
            "{place_name}发生了什么",
            "给我看{place_name}的{news_topic}新闻",
            "给我读一下{news_topic}要闻",
        ],
        "sw-KE": [
            "habari za hivi punde za {news_topic} ni zipi",
            "nipe vichwa vya habari za {news_topic}",
            "nini kinaendelea {place_name}",
            "nionyeshe habari za {news_topic} kutoka {place_name}",
            "nisomee habari kuu za {news_topic}",
        ],
    },
    "transport_ticket": {
        "en-US": [
            "book a [transport_type : train] ticket to {place_name} {date}",
            "i need a [transport_type : bus] ticket to {place_name}",
            "get me two [transport_type : train] tickets to {place_name}",
            "reserve a seat on the [transport_type : train] to {place_name} {date}",
            "please book me a [transport_type : bus] ticket {date}",
        ],
        "de-DE": [
            "buch mir ein ticket für den [transport_type : zug] nach {place_name} {date}",
            "ich brauche ein ticket für den [transport_type : bus] nach {place_name}",
            "besorg mir zwei tickets für den [transport_type : zug] nach {place_name}",
            "reservier mir {date} einen sitzplatz im [transport_type : zug] nach {place_name}",
            "buch mir bitte {date} ein ticket für den [transport_type : bus]",
        ],
        "fr-FR": [
            "réserve un billet de [transport_type : train] pour {place_name} {date}",
            "j'ai besoin d'un billet de [transport_type : bus] pour {place_name}",
            "prends-moi deux billets de [transport_type : train] pour {place_name}",
            "réserve une place dans le [transport_type : train] pour {place_name} {date}",
            "réserve-moi un billet de [transport_type : bus] {date} s'il te plaît",
        ],
        "es-ES": [
            "reserva un billete de [transport_type : tren] a {place_name} {date}",
            "necesito un billete de [transport_type : autobús] a {place_name}",
            "consígueme dos billetes de [transport_type : tren] a {place_name}",
            "reserva un asiento en el [transport_type : tren] a {place_name} {date}",
            "por favor resérvame un billete de [transport_type : autobús] {date}",
        ],
        "ru-RU": [
            "забронируй билет на [transport_type : поезд] до {place_name.gen} {date}",
            "мне нужен билет на [transport_type : автобус] до {place_name.gen}",
            "купи мне два билета на [transport_type : поезд] до {place_name.gen}",
            "забронируй место в [transport_type : поезде] до {place_name.gen} {date}",
            "пожалуйста купи мне билет на [transport_type : автобус] {date}",
        ],
        "ar-SA": [
            "احجز تذكرة [transport_type : قطار] إلى {place_name} {date}",
            "أحتاج تذكرة [transport_type : حافلة] إلى {place_name}",
            "احجز لي تذكرتين في [transport_type : القطار] إلى {place_name}",
            "احجز مقعدا في [transport_type : القطار] المتجه إلى {place_name} {date}",
            "من فضلك احجز لي تذكرة [transport_type : حافلة] {date}",
        ],
        "hi-IN": [
            "{date} {place_name} के लिए [transport_type : ट्रेन] का टिकट बुक करो",
            "मुझे {place_name} के लिए [transport_type : बस] का टिकट चाहिए",
            "मेरे लिए {place_name} की दो [transport_type : ट्रेन] टिकटें ले लो",
            "{date} {place_name} जाने वाली [transport_type : ट्रेन] में एक सीट रिज़र्व करो",
            "कृपया {date} जाने के लिए [transport_type : बस] का टिकट बुक कर दो",
        ],
        "ja-JP": [
            "{date}の{place_name}行きの[transport_type : 電車]の切符を予約して",
            "{place_name}行きの[transport_type : バス]のチケットが必要",
            "{place_name}行きの[transport_type : 電車]の切符を二枚取って",
            "{date}の{place_name}行きの[transport_type : 電車]の席を予約して",
            "{date}の[transport_type : バス]のチケットを予約してください",
        ],
        "zh-CN": [
            "帮我订一张{date}去{place_name}的[transport_type : 火车]票",
            "我需要一张去{place_name}的[transport_type : 大巴]票",
            "给我买两张去{place_name}的[transport_type : 火车]票",
            "帮我预订{date}去{place_name}的[transport_type : 火车]座位",
            "请帮我订一张{date}的[transport_type : 大巴]票",
        ],
        "sw-KE": [
            "nikatie tiketi ya [transport_type : treni] kwenda {place_name} {date}",
            "nahitaji tiketi ya [transport_type : basi] kwenda {place_name}",
            "ninunulie tiketi mbili za [transport_type : treni] kwenda {place_name}",
            "nihifadhie kiti kwenye [transport_type : treni] ya kwenda {place_name} {date}",
            "tafadhali nikatie tiketi ya [transport_type : basi] ya {date}",
        ],
    },
}

# ---------------------------------------------------------------------------------------------
# Verification sentences: everyday requests and support messages in many languages/scripts.
# ---------------------------------------------------------------------------------------------

VERIFY_SENTENCES: list[tuple[str, str]] = [
    # Latin
    ("en-US", "Set a timer for ten minutes."),
    ("en-US", "What's the weather like in Seattle tomorrow?"),
    ("en-US", "My order hasn't arrived yet and it's been two weeks."),
    ("en-US", "Can you turn the volume down a little?"),
    ("en-US", "I forgot my password and can't log in."),
    ("de-DE", "Wie wird das Wetter morgen in Hamburg?"),
    ("de-DE", "Bitte erinnere mich um 18 Uhr an den Zahnarzttermin."),
    ("de-DE", "Meine Bestellung ist beschädigt angekommen."),
    ("de-DE", "Spiel etwas ruhige Musik zum Einschlafen."),
    ("de-DE", "Ich möchte mein Abonnement kündigen."),
    ("fr-FR", "Quelle heure est-il à Montréal ?"),
    ("fr-FR", "Mets une alarme à sept heures demain matin."),
    ("fr-FR", "Je n'arrive pas à me connecter à mon compte."),
    ("fr-FR", "Peux-tu allumer la lumière du salon ?"),
    ("fr-FR", "Le colis a été livré à la mauvaise adresse."),
    ("es-ES", "¿Qué tiempo hará este fin de semana en Sevilla?"),
    ("es-ES", "Pon una canción de Rosalía, por favor."),
    ("es-ES", "Quiero devolver unos zapatos que me quedan pequeños."),
    ("es-ES", "Recuérdame llamar a mi madre esta tarde."),
    ("es-ES", "La aplicación se cierra cada vez que la abro."),
    ("pt-BR", "Qual é a previsão do tempo para amanhã em São Paulo?"),
    ("pt-BR", "Liga as luzes da cozinha, por favor."),
    ("pt-BR", "Meu pedido ainda não chegou."),
    ("pt-BR", "Toca uma música do Caetano Veloso."),
    ("pt-BR", "Como faço para alterar o endereço de entrega?"),
    ("tr-TR", "Yarın sabah yedide beni uyandır."),
    ("tr-TR", "İstanbul'da hava nasıl?"),
    ("tr-TR", "Siparişim neden hâlâ kargoya verilmedi?"),
    ("tr-TR", "Salonun ışıklarını kapat."),
    ("vi-VN", "Thời tiết Hà Nội hôm nay thế nào?"),
    ("vi-VN", "Đặt báo thức lúc sáu giờ sáng mai."),
    ("vi-VN", "Tôi muốn đổi mật khẩu tài khoản."),
    ("vi-VN", "Bật nhạc thư giãn giúp tôi."),
    ("pl-PL", "Jaka będzie pogoda jutro w Krakowie?"),
    ("pl-PL", "Włącz światło w sypialni."),
    ("pl-PL", "Moja paczka nie dotarła na czas."),
    ("pl-PL", "Przypomnij mi o spotkaniu o piętnastej."),
    ("id-ID", "Bagaimana cuaca di Jakarta besok?"),
    ("id-ID", "Setel alarm jam enam pagi."),
    ("id-ID", "Pesanan saya belum sampai."),
    ("id-ID", "Matikan lampu kamar tidur."),
    ("sw-KE", "Hali ya hewa itakuwaje Mombasa kesho?"),
    ("sw-KE", "Niamshe saa moja asubuhi."),
    ("sw-KE", "Agizo langu bado halijafika."),
    ("sw-KE", "Cheza wimbo wa Sauti Sol."),
    ("sw-KE", "Nimesahau nenosiri langu."),
    # Cyrillic
    ("ru-RU", "Какая погода будет завтра в Москве?"),
    ("ru-RU", "Поставь будильник на семь утра."),
    ("ru-RU", "Мой заказ до сих пор не доставили."),
    ("ru-RU", "Включи музыку для пробежки."),
    ("ru-RU", "Как изменить номер телефона в профиле?"),
    ("uk-UA", "Яка погода сьогодні у Львові?"),
    ("uk-UA", "Увімкни світло на кухні."),
    ("uk-UA", "Я не можу оплатити замовлення карткою."),
    ("uk-UA", "Нагадай мені купити хліб."),
    # Greek
    ("el-GR", "Τι καιρό θα κάνει αύριο στην Αθήνα;"),
    ("el-GR", "Βάλε ξυπνητήρι για τις επτά."),
    ("el-GR", "Η παραγγελία μου δεν έχει φτάσει ακόμα."),
    ("el-GR", "Σβήσε τα φώτα στο υπνοδωμάτιο."),
    # Arabic script
    ("ar-SA", "كيف سيكون الطقس في الرياض غدا؟"),
    ("ar-SA", "اضبط المنبه على الساعة السادسة صباحا."),
    ("ar-SA", "لم يصل طلبي حتى الآن."),
    ("ar-SA", "شغل أغنية لفيروز من فضلك."),
    ("ar-SA", "كيف يمكنني تغيير كلمة المرور؟"),
    ("fa-IR", "هوای تهران فردا چطور است؟"),
    ("fa-IR", "ساعت هفت صبح بیدارم کن."),
    ("fa-IR", "سفارش من هنوز نرسیده است."),
    ("fa-IR", "چراغ\u200cهای آشپزخانه را خاموش کن."),
    ("ur-PK", "کل لاہور میں موسم کیسا ہوگا؟"),
    ("ur-PK", "مجھے صبح چھ بجے جگا دینا۔"),
    ("ur-PK", "میرا آرڈر ابھی تک نہیں پہنچا۔"),
    ("ur-PK", "براہ کرم کمرے کی بتی بند کر دو۔"),
    # Hebrew
    ("he-IL", "מה מזג האוויר מחר בתל אביב?"),
    ("he-IL", "תעיר אותי בשבע בבוקר."),
    ("he-IL", "ההזמנה שלי עדיין לא הגיעה."),
    ("he-IL", "תדליק את האור בסלון."),
    # Devanagari
    ("hi-IN", "कल दिल्ली में मौसम कैसा रहेगा?"),
    ("hi-IN", "सुबह छह बजे का अलार्म लगा दो।"),
    ("hi-IN", "मेरा ऑर्डर अभी तक नहीं आया है।"),
    ("hi-IN", "कोई पुराना हिंदी गाना चलाओ।"),
    ("hi-IN", "मैं अपना पासवर्ड भूल गया हूँ।"),
    # Bengali
    ("bn-BD", "আগামীকাল ঢাকার আবহাওয়া কেমন থাকবে?"),
    ("bn-BD", "সকাল সাতটায় আমাকে জাগিয়ে দিও।"),
    ("bn-BD", "আমার অর্ডার এখনও পৌঁছায়নি।"),
    ("bn-BD", "বসার ঘরের আলো নিভিয়ে দাও।"),
    # Tamil
    ("ta-IN", "நாளை சென்னையில் வானிலை எப்படி இருக்கும்?"),
    ("ta-IN", "காலை ஆறு மணிக்கு என்னை எழுப்பு."),
    ("ta-IN", "என் ஆர்டர் இன்னும் வந்து சேரவில்லை."),
    ("ta-IN", "சமையலறை விளக்கை அணைத்துவிடு."),
    # Thai
    ("th-TH", "พรุ่งนี้อากาศที่กรุงเทพเป็นอย่างไร"),
    ("th-TH", "ตั้งนาฬิกาปลุกตอนหกโมงเช้า"),
    ("th-TH", "คำสั่งซื้อของฉันยังไม่มาถึง"),
    ("th-TH", "ปิดไฟในห้องนอนหน่อย"),
    # Hangul
    ("ko-KR", "내일 서울 날씨 어때?"),
    ("ko-KR", "아침 일곱 시에 알람 맞춰 줘."),
    ("ko-KR", "주문한 물건이 아직 안 왔어요."),
    ("ko-KR", "거실 불 좀 꺼 줘."),
    ("ko-KR", "비밀번호를 잊어버렸어요."),
    # Japanese
    ("ja-JP", "明日の大阪の天気はどう？"),
    ("ja-JP", "朝七時にアラームをセットして。"),
    ("ja-JP", "注文した商品がまだ届いていません。"),
    ("ja-JP", "リビングの電気を消して。"),
    ("ja-JP", "パスワードを変更する方法を教えてください。"),
    # Chinese (simplified and traditional)
    ("zh-CN", "明天北京的天气怎么样？"),
    ("zh-CN", "帮我定一个早上七点的闹钟。"),
    ("zh-CN", "我的订单还没有到。"),
    ("zh-CN", "把客厅的灯关掉。"),
    ("zh-CN", "怎么修改我的收货地址？"),
    ("zh-TW", "明天台北會下雨嗎？"),
    ("zh-TW", "幫我播放周杰倫的歌。"),
    ("zh-TW", "我的包裹還沒有送到。"),
    ("zh-TW", "請把臥室的燈關掉。"),
    # Georgian
    ("ka-GE", "როგორი ამინდი იქნება ხვალ თბილისში?"),
    ("ka-GE", "გამაღვიძე დილის შვიდ საათზე."),
    ("ka-GE", "ჩემი შეკვეთა ჯერ არ მოსულა."),
    ("ka-GE", "გამორთე შუქი საძინებელში."),
    # Armenian
    ("hy-AM", "Վաղը Երևանում անձրև կլինի՞։"),
    ("hy-AM", "Արթնացրու ինձ առավոտյան յոթին։"),
    ("hy-AM", "Իմ պատվերը դեռ չի հասել։"),
    ("hy-AM", "Անջատիր լույսը ննջասենյակում։"),
    # Ethiopic
    ("am-ET", "ነገ በአዲስ አበባ የአየር ሁኔታው እንዴት ይሆናል?"),
    ("am-ET", "ጠዋት አንድ ሰዓት ላይ ቀስቅሰኝ።"),
    ("am-ET", "ያዘዝኩት እቃ እስካሁን አልደረሰም።"),
    ("am-ET", "የመኝታ ቤቱን መብራት አጥፋ።"),
]

# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

PLACEHOLDER = re.compile(r"\{(\w+)(?:\.(\w+))?\}")
ANNOTATION = re.compile(r"\[(\w+) : ([^\]]+)\]")

Choice = tuple[tuple[str, int], ...]  # ((slot, value index), ...) sorted by slot
Planned = tuple[int, str, str, int, Choice]  # (id, partition, intent, template index, choice)


def template_slots(template: str) -> list[str]:
    """Sorted, distinct slot names used as ``{placeholders}`` in a template."""
    return sorted({m.group(1) for m in PLACEHOLDER.finditer(template)})


def render(template: str, locale: str, choice: Choice) -> tuple[str, str]:
    """Fill a template; return ``(utt, annot_utt)``."""
    picks = dict(choice)

    def substitute(match: re.Match[str]) -> str:
        slot, form = match.group(1), match.group(2) or "base"
        value = SLOT_VALUES[locale][slot][picks[slot]]
        text = value[form] if isinstance(value, dict) else value
        if "<" in text:
            before, rest = text.split("<", 1)
            core, after = rest.split(">", 1)
        else:
            before, core, after = "", text, ""
        return f"{before}[{slot} : {core}]{after}"

    annot_utt = PLACEHOLDER.sub(substitute, template)
    utt = ANNOTATION.sub(r"\2", annot_utt)
    return utt, annot_utt


def _require(condition: bool, context: object) -> None:
    """Raise (also under ``python -O``) when a table or generated text is malformed."""
    if not condition:
        raise ValueError(f"bad sample data: {context!r}")


def validate_tables() -> None:
    """Check that the tables are parallel across locales and use forms that exist."""
    reference = SLOT_VALUES["en-US"]
    for locale in LOCALES:
        values = SLOT_VALUES[locale]
        _require(values.keys() == reference.keys(), locale)
        for slot, items in values.items():
            _require(len(items) == len(reference[slot]), (locale, slot))
    for intent, per_locale in TEMPLATES.items():
        _require(per_locale.keys() == set(LOCALES), intent)
        english = per_locale["en-US"]
        for locale, templates in per_locale.items():
            _require(len(templates) == len(english), (intent, locale))
            for index, template in enumerate(templates):
                where = (intent, locale, index)
                _require(template_slots(template) == template_slots(english[index]), where)
                literal = sorted(m.group(1) for m in ANNOTATION.finditer(template))
                english_literal = sorted(m.group(1) for m in ANNOTATION.finditer(english[index]))
                _require(literal == english_literal, where)
                for match in PLACEHOLDER.finditer(template):
                    slot, form = match.group(1), match.group(2) or "base"
                    for value in SLOT_VALUES[locale][slot]:
                        _require(isinstance(value, str) or form in value, (*where, slot, form))


def check_text(locale: str, utt: str) -> None:
    """MASSIVE style: lowercase, single spaces, no final punctuation, letters in one script."""
    _require(utt == utt.lower(), (locale, utt))
    _require(utt == " ".join(utt.split()), (locale, utt))
    _require(utt[-1] not in ".?!。？！", (locale, utt))
    for char in utt:
        if unicodedata.category(char)[0] in "LM":
            _require(unicodedata.name(char).startswith(SCRIPTS[locale]), (locale, utt, char))


# ---------------------------------------------------------------------------------------------
# Dataset construction
# ---------------------------------------------------------------------------------------------


def plan_examples(rng: random.Random) -> list[Planned]:
    """Pick (id, partition, intent, template index, slot choice) for the full sample.

    Each intent cycles through its templates; slot values are drawn at random without
    repeating a (template, values) pair, so no utterance occurs twice within a locale.
    """
    per_intent = sum(SAMPLE_SPLIT.values())
    partitions = [part for part in PARTITIONS for _ in range(SAMPLE_SPLIT[part])]
    planned: list[tuple[str, str, int, Choice]] = []
    for intent in INTENTS:
        templates = TEMPLATES[intent]["en-US"]
        used: set[tuple[int, Choice]] = set()
        picks: list[tuple[int, Choice]] = []
        for k in range(per_intent):
            index = k % len(templates)
            slots = template_slots(templates[index])
            for _ in range(1000):
                choice = tuple(
                    (slot, rng.randrange(len(SLOT_VALUES["en-US"][slot]))) for slot in slots
                )
                if (index, choice) not in used:
                    break
            else:
                raise RuntimeError(f"not enough slot combinations for {intent} #{index}")
            used.add((index, choice))
            picks.append((index, choice))
        rng.shuffle(picks)
        planned.extend(
            (partition, intent, index, choice)
            for partition, (index, choice) in zip(partitions, picks, strict=True)
        )
    rng.shuffle(planned)
    ids = sorted(rng.sample(range(10, 16500), len(planned)))
    return [(ids[n], *item) for n, item in enumerate(planned)]


def mini_subset(plan: list[Planned]) -> list[Planned]:
    """The first MINI_SPLIT examples (by id) of each partition for each mini intent."""
    taken: Counter[tuple[str, str]] = Counter()
    subset = []
    for item in sorted(plan):
        _, partition, intent, _, _ = item
        if intent in MINI_INTENTS and taken[intent, partition] < MINI_SPLIT[partition]:
            taken[intent, partition] += 1
            subset.append(item)
    return subset


def records(plan: list[Planned], locale: str) -> list[dict[str, str]]:
    rows = []
    for example_id, partition, intent, index, choice in sorted(plan):
        utt, annot_utt = render(TEMPLATES[intent][locale][index], locale, choice)
        check_text(locale, utt)
        rows.append(
            {
                "id": str(example_id),
                "locale": locale,
                "partition": partition,
                "scenario": INTENTS[intent],
                "intent": intent,
                "utt": utt,
                "annot_utt": annot_utt,
            }
        )
    return rows


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def overlap_report(rows: list[dict[str, str]]) -> str:
    train = {row["utt"] for row in rows if row["partition"] == "train"}
    test = [row["utt"] for row in rows if row["partition"] == "test"]
    return f"{sum(utt in train for utt in test)}/{len(test)} test utts also in train"


def main() -> None:
    parser = argparse.ArgumentParser(description="Regenerate kdcli's sample data.")
    parser.add_argument(
        "--root", type=Path, default=REPO_ROOT, help="repository root to write into"
    )
    args = parser.parse_args()
    root: Path = args.root

    validate_tables()
    plan = plan_examples(random.Random(SEED))
    mini = mini_subset(plan)

    for locale in LOCALES:
        rows = records(plan, locale)
        write_jsonl(root / SAMPLE_DIR / f"{locale}.jsonl", rows)
        print(f"{SAMPLE_DIR}/{locale}.jsonl: {len(rows)} examples, {overlap_report(rows)}")
    for locale in MINI_LOCALES:
        rows = records(mini, locale)
        write_jsonl(root / MINI_DIR / f"{locale}.jsonl", rows)
        print(f"{MINI_DIR}/{locale}.jsonl: {len(rows)} examples, {overlap_report(rows)}")

    verify = [{"text": text, "language": language} for language, text in VERIFY_SENTENCES]
    write_jsonl(root / VERIFY_PATH, verify)
    languages = {language for language, _ in VERIFY_SENTENCES}
    print(f"{VERIFY_PATH}: {len(verify)} sentences, {len(languages)} languages")


if __name__ == "__main__":
    main()
