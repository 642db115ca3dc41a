/** A required environment variable of a Lambda or container entry point; fails at start-up, naming it. */
export const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`environment variable ${name} is not set`);
  return v;
};
