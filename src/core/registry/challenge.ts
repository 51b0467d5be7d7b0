// The WWW-Authenticate header (RFC 9110 §11.6.1): one or more challenges, each a scheme and
// comma-separated parameters whose values may be quoted. Registries send
// `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.

export interface AuthChallenge {
  /** Lowercase: `bearer`, `basic`, … */
  scheme: string;
  /** Parameter names lowercase, values unquoted. */
  params: Map<string, string>;
}

const TOKEN_CHAR = /[!#$%&'*+.^_`|~0-9A-Za-z-]/;

export function parseAuthenticateHeader(header: string): AuthChallenge[] {
  const challenges: AuthChallenge[] = [];
  let position = 0;
  const skip = (characters: RegExp): void => {
    while (position < header.length && characters.test(header[position]!)) position++;
  };
  const readToken = (): string => {
    const start = position;
    while (position < header.length && TOKEN_CHAR.test(header[position]!)) position++;
    return header.slice(start, position);
  };
  const readQuoted = (): string => {
    let value = '';
    position++; // opening quote
    while (position < header.length && header[position] !== '"') {
      if (header[position] === '\\') position++;
      value += header[position] ?? '';
      position++;
    }
    position++; // closing quote
    return value;
  };

  while (position < header.length) {
    skip(/[\s,]/);
    const scheme = readToken();
    if (scheme === '') break; // not a header we can read any further
    const challenge: AuthChallenge = { scheme: scheme.toLowerCase(), params: new Map() };
    challenges.push(challenge);
    for (;;) {
      skip(/[\s,]/);
      const paramStart = position;
      const name = readToken();
      skip(/\s/);
      if (name === '' || header[position] !== '=') {
        position = paramStart; // the next challenge's scheme
        break;
      }
      position++;
      skip(/\s/);
      challenge.params.set(name.toLowerCase(), header[position] === '"' ? readQuoted() : readToken());
    }
  }
  return challenges;
}
