//! The pages' one stylesheet, inline in every page (no request for it, and
//! nothing to fetch when the county's uplink is down). Phones first: the
//! page never scrolls sideways; tables scroll inside `.scroll`.

pub(crate) const CSS: &str = r#"
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"PingFang SC","Microsoft YaHei","Noto Sans CJK SC","WenQuanYi Micro Hei",sans-serif;color:#1d2733;background:#f4f6f8}
a{color:#0b5cad}
header.top{background:#12406b;color:#fff;padding:8px 12px;display:flex;flex-wrap:wrap;gap:4px 14px;align-items:center}
header.top a{color:#fff;text-decoration:none}
header.top .brand{font-weight:600}
header.top nav{display:flex;flex-wrap:wrap;gap:4px 12px}
header.top .who{margin-left:auto;font-size:13px;opacity:.9}
header.top button{background:none;border:1px solid rgba(255,255,255,.6);color:#fff;border-radius:4px;padding:1px 8px;font-size:13px}
main{max-width:1100px;margin:0 auto;padding:10px 12px 40px;overflow-wrap:anywhere}
h1{font-size:21px;margin:8px 0 2px}
h2{font-size:18px;margin:24px 0 8px;border-left:4px solid #12406b;padding-left:8px}
h3{font-size:16px;margin:16px 0 6px}
p{margin:6px 0}
.sub{color:#5a6773;font-size:13px;margin:0 0 8px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:8px;margin:8px 0}
.card{background:#fff;border:1px solid #dde3e9;border-radius:6px;padding:8px 10px;min-width:0}
.card .k{font-size:12px;color:#5a6773}
.card .v{font-size:22px;font-weight:600;line-height:1.3}
.card .n{font-size:12px;color:#5a6773}
.cards.small{grid-template-columns:repeat(auto-fill,minmax(96px,1fr))}
.cards.small .v{font-size:18px}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;background:#fff;border:1px solid #dde3e9;border-radius:6px;margin:6px 0;max-width:100%}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{padding:6px 8px;border-bottom:1px solid #e6eaee;text-align:left;white-space:nowrap;vertical-align:top}
th{background:#f0f3f6;font-weight:600;font-size:13px}
td.wrap{white-space:normal;min-width:14em;max-width:28em}
td.name{white-space:normal;min-width:8em;max-width:16em}
.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#137333}.bad{color:#b3261e}.na{color:#6b7785}
.tag{display:inline-block;font-size:12px;line-height:1.6;border-radius:3px;padding:0 5px;margin:0 2px;background:#e8eef5;color:#12406b;white-space:nowrap}
.tag.tp{background:#fff3d6;color:#7a4b00}
.tag.bad{background:#fde7e5;color:#b3261e}
.tag.ok{background:#e6f4ea;color:#137333}
.chart{background:#fff;border:1px solid #dde3e9;border-radius:6px;padding:6px 8px;margin:6px 0;max-width:480px}
.chart svg{display:block;width:100%;height:auto}
.chart .cap{font-size:13px;font-weight:600;margin:0 0 4px}
.legend{font-size:12px;color:#5a6773;margin:4px 0 0}
.legend i{display:inline-block;width:10px;height:10px;margin:0 3px 0 8px;vertical-align:-1px}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,340px),1fr));gap:8px}
.banner{padding:8px 12px;border-radius:6px;margin:8px 0}
.banner.ok{background:#e6f4ea;color:#137333}
.banner.err{background:#fde7e5;color:#b3261e}
form.inline{display:inline;margin:0}
button,input,textarea,select{font:inherit;max-width:100%}
button{cursor:pointer;padding:3px 12px;border-radius:4px;border:1px solid #12406b;background:#12406b;color:#fff}
button.secondary{background:#fff;color:#b3261e;border-color:#b3261e}
.review-list{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,320px),1fr));gap:8px;margin:6px 0}
.review-item{background:#fff;border:1px solid #dde3e9;border-radius:6px;padding:8px 10px;min-width:0}
.review-item .head{display:flex;flex-wrap:wrap;gap:4px 8px;align-items:baseline}
.review-item .head b{font-size:15px}
.actions{display:flex;flex-wrap:wrap;gap:6px;align-items:flex-start;margin-top:6px}
.actions form{display:flex;flex-wrap:wrap;gap:4px;align-items:flex-start;margin:0}
.actions textarea{width:16em;max-width:100%;height:2.4em;border:1px solid #bcc6d0;border-radius:4px;padding:2px 4px}
.filters{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:8px 0}
.filters select,.filters input{padding:3px 6px;border:1px solid #bcc6d0;border-radius:4px}
.filters input[type=number]{width:5em}
.login{max-width:360px;margin:32px auto;background:#fff;padding:20px;border-radius:8px;border:1px solid #dde3e9}
.login label{display:block;margin:10px 0 4px}
.login input{width:100%;padding:8px;border:1px solid #bcc6d0;border-radius:4px}
.login button{width:100%;margin-top:16px;padding:10px}
ul.plain{margin:4px 0;padding-left:18px}
details{margin:6px 0}
details summary{cursor:pointer;color:#0b5cad}
.error h1{color:#b3261e}
ul.atts{list-style:none;margin:4px 0;padding:0;display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,300px),1fr));gap:8px}
.att{display:flex;gap:8px;align-items:flex-start;background:#fff;border:1px solid #dde3e9;border-radius:6px;padding:6px 8px;min-width:0}
.att .thumb{flex:none;width:96px;height:96px;display:flex;align-items:center;justify-content:center;background:#f0f3f6;border-radius:4px;overflow:hidden;font-size:12px;color:#6b7785}
.att .thumb img{display:block;width:96px;height:96px;object-fit:contain}
.att .meta{min-width:0;font-size:14px}
"#;
