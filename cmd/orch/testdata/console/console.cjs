// The console in Debian's headless Chromium, driven by playwright-core
// (TestConsoleInABrowser starts serve, deploys and publishes metrics; this
// script is the user). Lines "need:NAME" on stdout ask the Go test for
// something; it answers on stdin with "ok:NAME".
const { chromium } = require("playwright-core");
const readline = require("readline");

const env = (k) => {
  if (!process.env[k]) throw new Error(k + " is not set");
  return process.env[k];
};
const base = env("ORCH_URL"), token = env("ORCH_TOKEN"), dep = env("ORCH_DEPLOYMENT"), shots = env("ORCH_SHOTS");
const answers = readline.createInterface({ input: process.stdin });
const pending = {};
answers.on("line", (l) => { const m = /^ok:(.*)$/.exec(l); if (m && pending[m[1]]) pending[m[1]](); });
const need = (name) => new Promise((resolve) => { pending[name] = resolve; console.log("need:" + name); });
const check = (cond, msg) => { if (!cond) throw new Error(msg); };
const step = (msg) => console.log("step: " + msg);

(async () => {
  const browser = await chromium.launch({ executablePath: env("ORCH_CHROMIUM"), args: ["--no-sandbox", "--disable-gpu"] });
  const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
  page.setDefaultTimeout(30000);
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
  try {
    step("a page without the session goes to the login page");
    await page.goto(base + "/");
    check(new URL(page.url()).pathname === "/login", "not sent to /login: " + page.url());

    step("a wrong token is refused");
    await page.fill("#token", "not-the-token");
    await page.click("button[type=submit]");
    await page.waitForSelector("#login-error");
    check((await page.textContent("#login-error")).includes("Wrong token"), "no error shown");
    await page.screenshot({ path: shots + "/login.png" });

    step("the token logs in");
    await page.fill("#token", token);
    await page.click("button[type=submit]");
    await page.waitForSelector(`a[href="#/d/${dep}"]`);
    await page.screenshot({ path: shots + "/deployments.png", fullPage: true });

    step("the deployment's topology: nodes, instances, relationships by kind");
    await page.click(`a[href="#/d/${dep}"]`);
    const expect = JSON.parse(env("ORCH_EXPECT_NODES")); // node -> instances
    for (const [node, n] of Object.entries(expect)) {
      await page.waitForSelector(`svg.topology g.node[data-node="${node}"]`);
      const got = await page.$$eval(`svg.topology g.node[data-node="${node}"] text.instance[data-instance]`, (els) => els.length);
      check(got === n, `node ${node}: ${got} instances drawn, want ${n}`);
      const states = await page.$$eval(`svg.topology g.node[data-node="${node}"] text.instance`, (els) => els.map((e) => e.textContent));
      check(states.every((s) => s.endsWith(": started")), `node ${node}: states ${states}`);
    }
    for (const [from, to, kind] of JSON.parse(env("ORCH_EXPECT_EDGES"))) {
      const cls = await page.getAttribute(`svg.topology g.edge[data-from="${from}"][data-to="${to}"]`, "class");
      check(cls && cls.includes(kind), `edge ${from} -> ${to}: class ${cls}, want ${kind}`);
    }
    step("the nodes are reachable with the keyboard");
    let focused = "";
    for (let i = 0; i < 40 && !focused; i++) {
      await page.keyboard.press("Tab");
      focused = await page.evaluate(() => (document.activeElement && document.activeElement.getAttribute("data-node")) || "");
    }
    check(focused !== "", "no topology node takes the focus");
    await page.screenshot({ path: shots + "/deployment.png", fullPage: true });

    step("run scale from its form and watch its events arrive");
    const form = `form[data-workflow="scale"]`;
    await page.fill(`${form} input[name="scalable_entity_name"]`, "host");
    await page.fill(`${form} input[name="delta"]`, "1");
    await page.click(`${form} button[type=submit]`);
    await page.waitForFunction(() => location.hash.startsWith("#/x/"));
    await page.waitForSelector("ol.events li");
    await page.waitForSelector(`.badge[data-status="succeeded"]`, { timeout: 60000 });
    const events = await page.$$eval("ol.events li", (els) => els.length);
    check(events >= 3, `${events} events shown`);
    await page.screenshot({ path: shots + "/execution.png", fullPage: true });

    step("the topology shows the new instance");
    await page.click(`a[href="#/d/${dep}"]`);
    await page.waitForFunction((n) => document.querySelectorAll(`svg.topology g.node[data-node="host"] text.instance[data-instance]`).length === n,
      expect.host + 1);

    step("a policy: pause it, see the chart move and the policy held back");
    const policy = env("ORCH_POLICY");
    await page.click(`a[href="#/p/${dep}/${policy}"]`);
    await page.waitForSelector("svg.chart g.series");
    await page.fill("#pause-for", "10m");
    await page.fill("#pause-reason", "console test");
    await page.click("form.pause button[type=submit]");
    await page.waitForSelector(`p.state[data-state="paused"]`);
    const points = async () => Number(await page.getAttribute("svg.chart g.series", "data-points"));
    const before = await points();
    await need("breach");
    await page.waitForFunction((n) => Number(document.querySelector("svg.chart g.series").getAttribute("data-points")) > n + 2, before);
    await page.waitForSelector(`ol.decisions li[data-reason="paused"]`);
    check((await page.textContent(`ol.decisions li[data-reason="paused"]`)).includes("held back: the policy is paused"), "no words for the pause");
    check((await page.textContent("p.state")).includes("console test"), "the reason is not shown");
    await page.waitForSelector(`svg.chart g.mark.held`);
    await page.screenshot({ path: shots + "/policy.png", fullPage: true });

    step("resume (the metrics stopped and the window empty: nothing fires)");
    await need("quiet");
    await page.waitForTimeout(2500);
    await page.click("#resume");
    await page.waitForSelector(`p.state:not([data-state="paused"])`);

    step("at a laptop's width nothing overflows the page");
    await page.setViewportSize({ width: 1024, height: 768 });
    const over = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    check(over <= 0, `the page is ${over}px wider than the window`);

    step("log out");
    await page.click("#logout button");
    await page.waitForURL(/\/login$/);
    const r = await page.request.get(base + "/v1/deployments");
    check(r.status() === 401, `after logout the API answers ${r.status()}`);

    const foreign = requests.filter((u) => !u.startsWith(base));
    check(foreign.length === 0, "requests to other hosts: " + foreign.join(", "));
    console.log("done");
  } catch (e) {
    await page.screenshot({ path: shots + "/failure.png", fullPage: true }).catch(() => {});
    console.error("console test failed: " + (e.stack || e));
    process.exitCode = 1;
  } finally {
    await browser.close();
    answers.close();
  }
})();
