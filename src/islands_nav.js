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
  const restore = (kept, body) => {
    const key = kept.form.querySelector('input[type=hidden][name=key]');
    const form = [...body.querySelectorAll('form')].find((f) => f.getAttribute('action') === kept.form.getAttribute('action') &&
      (!key || f.querySelector(`input[type=hidden][name=key][value="${CSS.escape(key.value)}"]`)));
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
  const notSent = (text) => {
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
  const go = async (req, how, kept) => {
    const mine = ++current;
    document.getElementById('nav-error')?.remove();
    let res;
    try { res = await fetch(req); } catch {
      if (mine !== current) return;
      if (kept) notSent('Not confirmed: the server could not be reached. Check the connection and send it again.');
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
      notSent(`Not done: the server answered ${res.status}${why ? `: ${why}` : '.'}`);
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
    if (target) target.scrollIntoView(); else if (how === 'push') window.scrollTo(0, 0);
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
    const params = new URLSearchParams();
    for (const [k, v] of new FormData(form, ev.submitter)) if (typeof v === 'string') params.append(k, v);
    ev.preventDefault();
    const kept = { form, values: typed(form).map((e) => [e.name, e.value, e.checked]),
      done: (form.dataset.done || '').split(/\s+/).filter(Boolean) };
    if (method === 'GET') { url.search = params.toString(); go(new Request(url), 'push'); }
    else go(new Request(url, { method: 'POST', body: params, headers: { Accept: 'text/html' } }), 'push', kept);
  });
  addEventListener('popstate', () => go(new Request(location.href), 'none'));
})();
