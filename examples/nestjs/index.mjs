// A NestJS app in cluster mode whose CacheInterceptor caches in one SharedMap: a route's answer cached by one
// worker is a hit in every other.
//   node examples/nestjs/index.mjs [--workers 4] [--port 3000]
//   curl -i http://127.0.0.1:3000/pages/7   renderedBy: the worker whose handler ran; x-worker: the one that answered
// Plain JavaScript, so the decorators TypeScript would apply (@Controller, @Get, ...) are applied by Reflect.decorate.
import 'reflect-metadata';
import cluster from 'node:cluster';
import { CacheInterceptor, CacheModule } from '@nestjs/cache-manager';
import { Controller, Get, Module, Param, UseInterceptors } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import Keyv from 'keyv';
import { SharedMap } from 'mmap-share';
import { KeyvStore } from 'mmap-share/keyv';
import { clusterArgs, startCluster } from '../cluster-server.mjs';

const args = clusterArgs();

if (cluster.isPrimary) {
  SharedMap.create({ name: 'nest_cache', capacity: '16MB' });
  await startCluster(args);
} else {
  const worker = cluster.worker.id;

  // @Controller('pages') @UseInterceptors(CacheInterceptor) class PagesController { @Get(':id') page(@Param('id') id) }
  class PagesController {
    page(id) {
      return { id, html: `<h1>page ${id}</h1>`, renderedBy: worker };
    }
  }
  Param('id')(PagesController.prototype, 'page', 0);
  const page = Object.getOwnPropertyDescriptor(PagesController.prototype, 'page');
  Object.defineProperty(
    PagesController.prototype,
    'page',
    Reflect.decorate([Get(':id')], PagesController.prototype, 'page', page),
  );
  Reflect.decorate([Controller('pages'), UseInterceptors(CacheInterceptor)], PagesController);

  // @Module({ imports: [CacheModule.register({ stores: [...] })], controllers: [PagesController] }) class AppModule {}
  class AppModule {}
  const store = new Keyv({ store: new KeyvStore(SharedMap.attach('nest_cache')) });
  Reflect.decorate(
    [Module({ imports: [CacheModule.register({ stores: [store], ttl: 60_000 })], controllers: [PagesController] })],
    AppModule,
  );

  const app = await NestFactory.create(AppModule, { logger: ['error', 'warn'] });
  app.use((req, res, next) => (res.setHeader('x-worker', String(worker)), next()));
  await app.listen(Number(process.env.PORT), '127.0.0.1');
}
