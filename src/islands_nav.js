(() => {
  // Islands mode: a same-site link or plain form fetches the next page and puts its <body> in
  // place of this one (no page load), then hydrates the islands in it. Whole, not patched, so
  // nothing of the old page is left behind.
  let current = 0;
  // A refused form keeps what the person typed: the answer's address carries the refusal (a
  // server function's `__err`, or a settings notice other than a success).
  const refused = (url) => url.searchParams.has('__err') ||
    ['conflict', 'invalid', 'error'].includes(url.searchParams.get('notice'));
  const typed = (form) => [...form.elements].filter((e) => e.name && !['hidden', 'submit', 'button', 'file'].includes(e.type));
  // A form is found again on the next page by its action and the hidden fields that name what
  // it acts on (a key, a history row, a request and its decision, a token or webhook action, a
  // revision), not those a change moves on (`expected_version`, `shown_revision`), so what was
  // typed goes back into the same form, not its neighbour.
  const identity = ['key', 'audit_id', 'id', 'decision', 'action', 'name', 'revision', 'run'];
  const formId = (f) => [f.getAttribute('action') || '', ...[...f.querySelectorAll('input[type=hidden]')]
    .filter((e) => identity.includes(e.name)).map((e) => `${e.name}=${e.value}`)].join('&');
  const restore = (kept, body) => {
    const form = [...body.querySelectorAll('form')].find((f) => formId(f) === kept.id);
    if (!form) return;
    for (const [name, value, checked] of kept.values) {
      const el = [...form.elements].find((e) => e.name === name);
      if (!el) continue;
      if (el.type === 'checkbox' || el.type === 'radio') el.checked = checked; else el.value = value;
    }
  };
  // A form that got no page back stays as it is, with what was typed, and says why at the foot
  // of the window (outside every island; the next page swap removes it). Sending it again is
  // safe: a change carries the version it expects, so a repeat shows as a conflict.
  const notSent = (kept, text) => {
    delete kept.form.dataset.sending;
    let box = document.getElementById('nav-error');
    if (!box) {
      box = document.createElement('p');
      box.id = 'nav-error';
      box.className = 'nav-error';
      box.setAttribute('role', 'alert');
      box.dataset.testid = 'nav-error';
      document.body.append(box);
    }
    box.textContent = text;
  };
  // What the tab keeps (`rp.*`) belongs to the user who typed it: when another user's page
  // shows in this tab (a session ran out and someone else signed in), it is forgotten.
  const owner = () => {
    const who = document.body.querySelector('[data-user]')?.dataset.user;
    if (!who) return;
    try {
      if (sessionStorage.getItem('rp.user') === who) return;
      for (const name of Object.keys(sessionStorage)) if (name.startsWith('rp.')) sessionStorage.removeItem(name);
      sessionStorage.setItem('rp.user', who);
    } catch {}
  };
  owner();
  const go = async (req, how, kept) => {
    const mine = ++current;
    document.getElementById('nav-error')?.remove();
    let res;
    try { res = await fetch(req); } catch {
      if (mine !== current) return;
      if (kept) notSent(kept, 'Not confirmed: the server could not be reached. Check the connection and send it again.');
      else location.href = req.url;
      return;
    }
    const type = res.headers.get('content-type') || '';
    if (!type.startsWith('text/html')) {
      if (mine !== current) return;
      if (!kept) { location.href = res.url; return; }
      if (res.ok) { location.reload(); return; }
      // The server's JSON error names what was refused.
      let why = '';
      try { why = JSON.parse(await res.text()).error || ''; } catch {}
      notSent(kept, `Not done: the server answered ${res.status}${why ? `: ${why}` : '.'}`);
      return;
    }
    const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
    if (mine !== current) return;
    const url = new URL(res.redirected ? res.url : req.url);
    const hash = url.hash || new URL(req.url).hash;
    if (how === 'push') history.pushState(null, '', url.href);
    else if (how === 'replace') history.replaceState(null, '', url.href);
    document.title = doc.title;
    const body = document.adoptNode(doc.body);
    body.setAttribute('data-hydrated', document.body.getAttribute('data-hydrated') || '');
    document.body.replaceWith(body);
    owner();
    // A refused form keeps what was typed; an accepted one clears what it names in the tab's
    // store (`data-done`: a draft, the staged edits, `rp.*` on sign-out), before the new
    // islands read it.
    if (kept && refused(url)) restore(kept, body);
    else if (kept) {
      try {
        for (const item of kept.done) {
          // `prefix*` names every item under the prefix.
          const names = item.endsWith('*')
            ? Object.keys(sessionStorage).filter((n) => n.startsWith(item.slice(0, -1))) : [item];
          for (const name of names) sessionStorage.removeItem(name);
        }
      } catch {}
    }
    for (const island of body.querySelectorAll('leptos-island')) {
      if (window.__hydrateIsland) window.__hydrateIsland(island, island.dataset.component);
    }
    const target = hash && document.getElementById(decodeURIComponent(hash.slice(1)));
    // A form's answer comes back to the key it changed (the address a fetch ends at has no
    // `#`), which takes the keyboard focus, so the next Tab goes on from there.
    const key = !target && kept && body.querySelector('.key--focused');
    if (target) target.scrollIntoView();
    else if (key) {
      key.scrollIntoView({ block: 'center' });
      if (!key.hasAttribute('tabindex')) key.setAttribute('tabindex', '-1');
      key.focus({ preventScroll: true });
    } else if (how === 'push') window.scrollTo(0, 0);
  };
  addEventListener('click', (ev) => {
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.altKey || ev.ctrlKey || ev.shiftKey) return;
    const a = ev.composedPath().find((el) => el instanceof HTMLAnchorElement);
    if (!a || !a.href || a.target || a.hasAttribute('download')) return;
    if ((a.getAttribute('rel') || '').split(/\s+/).includes('external')) return;
    const url = new URL(a.href);
    if (url.origin !== location.origin) return;
    if (url.pathname === location.pathname && url.search === location.search && url.hash) return;
    ev.preventDefault();
    go(new Request(url), 'push');
  });
  addEventListener('submit', (ev) => {
    const form = ev.target;
    if (ev.defaultPrevented || !(form instanceof HTMLFormElement)) return;
    // Attributes, not properties: a field named `action` or `method` shadows the property.
    const attr = (name) => form.getAttribute(name) || '';
    if (attr('enctype').toLowerCase() === 'multipart/form-data' || attr('target')) return;
    const method = (attr('method') || 'get').toUpperCase();
    const url = new URL(attr('action') || location.href, location.href);
    if (url.origin !== location.origin || (method !== 'GET' && method !== 'POST')) return;
    // One answer at a time per form: a second click while the first is on its way is dropped.
    if (method === 'POST' && form.dataset.sending) { ev.preventDefault(); return; }
    const params = new URLSearchParams();
    for (const [k, v] of new FormData(form, ev.submitter)) if (typeof v === 'string') params.append(k, v);
    ev.preventDefault();
    if (method === 'POST') form.dataset.sending = '1';
    const kept = { form, id: formId(form), values: typed(form).map((e) => [e.name, e.value, e.checked]),
      done: (form.dataset.done || '').split(/\s+/).filter(Boolean) };
    if (method === 'GET') { url.search = params.toString(); go(new Request(url), 'push'); }
    else go(new Request(url, { method: 'POST', body: params, headers: { Accept: 'text/html' } }), 'push', kept);
  });
  addEventListener('popstate', () => go(new Request(location.href), 'none'));
})();
