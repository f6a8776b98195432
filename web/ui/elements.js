// A component's elements, looked up by id once when it is made.

/**
 * `elementsById({ badge: "engine-badge" })` -> `{ badge: <the element whose id is "engine-badge"> }`.
 * @param {Record<string, string>} ids  property name -> element id
 * @param {Document | Element} root  where to look (the document, or the form a component owns)
 * @returns {Record<string, HTMLElement>}
 */
export function elementsById(ids, root = document) {
  return Object.fromEntries(Object.entries(ids).map(([name, id]) => [name, root.querySelector(`#${id}`)]));
}
