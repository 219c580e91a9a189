((js, wasm) => {
  // Loads the bundle once the browser reports its first paint, then hydrates every island on the
  // page (`islands_nav.js` hydrates those of each page it swaps in). Nothing preloads the bundle:
  // on a slow phone its download would compete with the page's own text and stylesheet for the
  // first paint, and the page reads and works (every form posts) before it is hydrated. Without
  // paint timing it loads after the next frame; a page never painted (a background tab) loads
  // it after three seconds anyway.
  let started = false;
  const load = () => {
    if (started) return;
    started = true;
    import(js).then(async (mod) => {
      await mod.default({ module_or_path: wasm });
      mod.hydrate();
      window.__hydrateIsland = (el, id) => {
        const island = mod[id];
        if (island) island(el); else console.warn(`no island named ${id}`);
      };
      for (const el of document.body.querySelectorAll('leptos-island')) window.__hydrateIsland(el, el.dataset.component);
    });
  };
  if (((window.PerformanceObserver && PerformanceObserver.supportedEntryTypes) || []).includes('paint')) {
    new PerformanceObserver((_, o) => { o.disconnect(); setTimeout(load, 0); }).observe({ type: 'paint', buffered: true });
  } else {
    requestAnimationFrame(() => setTimeout(load, 0));
  }
  setTimeout(load, 3000);
})
