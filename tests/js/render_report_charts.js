// Compile every chart of a matcher report.html with the vega/vega-lite inlined in that file and
// render it to SVG, headless (no browser, no network).
// Usage: node render_report_charts.js report.html
// Prints "<chart id> <svg length>" per chart; exits 1 when any chart fails or logs an error.
const fs = require('fs');
const vm = require('vm');
const html = fs.readFileSync(process.argv[2], 'utf8');
const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map(m => m[1]);
const errors = [];
const logger = {...console, error: (...args) => { errors.push(args.join(' ')); console.error(...args); }};
const ctx = {console: logger, setTimeout, clearTimeout, Promise, structuredClone};
ctx.window = ctx; ctx.self = ctx; ctx.globalThis = ctx;
ctx.addEventListener = () => {}; ctx.removeEventListener = () => {};  // interactive charts bind window events
vm.createContext(ctx);
vm.runInContext(scripts[0], ctx);  // vega
vm.runInContext(scripts[1], ctx);  // vega-lite
const specs = JSON.parse(scripts[scripts.length - 1].match(/const specs = (.*);\n/)[1]);
(async () => {
  for (const [id, spec] of Object.entries(specs)) {
    const compiled = ctx.vegaLite.compile(spec).spec;
    const view = new ctx.vega.View(ctx.vega.parse(compiled), {renderer: 'none'});
    const svg = await view.toSVG();
    console.log(id, svg.length);
  }
  if (errors.length) process.exit(1);
})().catch(e => { console.error('FAIL', e.message); process.exit(1); });
